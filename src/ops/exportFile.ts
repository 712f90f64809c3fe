import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes an operator's export (message bodies may hold users' data) so that
 * nobody else can read it or redirect it, wherever it is written, /tmp
 * included. The temporary file is created in the target's directory (a
 * rename never crosses file systems), under a random name, with
 * O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 in the same call: a file or
 * symlink someone planted under that name makes the open fail instead of
 * being written through, and no other user can open it between its creation
 * and a later chmod, because there is none. The rename then replaces
 * whatever is at the target, a symlink included, without following it; a
 * half-written export never looks complete.
 */
export type TempName = (file: string) => string;

const randomTempName: TempName = (file) => path.join(path.dirname(file), `.${path.basename(file)}.${crypto.randomBytes(12).toString('hex')}.tmp`);

/** Names taken by someone else before giving up (a random name collides only when planted). */
const MAX_TRIES = 8;

const CREATE_EXCLUSIVELY = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0);

function openExclusive(file: string, tempName: TempName): { fd: number; tmp: string } {
  for (let tries = 1; ; tries++) {
    const tmp = tempName(file);
    try {
      return { fd: fs.openSync(tmp, CREATE_EXCLUSIVELY, 0o600), tmp };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries >= MAX_TRIES) throw err;
    }
  }
}

export function writeOwnerOnlyFile(file: string, content: string, tempName: TempName = randomTempName): void {
  const { fd, tmp } = openExclusive(path.resolve(file), tempName);
  try {
    try {
      // The umask may only take bits away; this keeps the owner's read and write whatever it is.
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path.resolve(file));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
