import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { writeOwnerOnlyFile } from '../../../src/ops/exportFile';

/**
 * What someone else on the machine can try against `warren dlq export
 * --file` in a directory they can write to (/tmp, a shared folder): plant a
 * symlink or a file of their own under the temporary name, or a symlink at
 * the target, and hope the export writes through it or into a file they can read.
 */
describe('operator export file', function () {
  let dir: string;
  let victim: string;
  let umask: number;
  beforeEach(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-export-unit-'));
    victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'victim data\n', { mode: 0o644 });
    // The most permissive umask: the file must be owner-only by its own mode, not by luck.
    umask = process.umask(0);
  });
  afterEach(function () {
    process.umask(umask);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const mode = (file: string) => fs.lstatSync(file).mode & 0o777;

  it('never writes through a symlink planted at the temporary name, nor into a file planted there', function () {
    const target = path.join(dir, 'export.json');
    const names = [path.join(dir, 'planted-link'), path.join(dir, 'planted-file'), path.join(dir, 'free')];
    fs.symlinkSync(victim, names[0]!);
    fs.writeFileSync(names[1]!, '', { mode: 0o666 });
    const tried: string[] = [];
    writeOwnerOnlyFile(target, '{"secret":true}\n', () => {
      const next = names[tried.length]!;
      tried.push(next);
      return next;
    });
    expect(tried).to.deep.equal(names);
    expect(fs.readFileSync(victim, 'utf8')).to.equal('victim data\n');
    expect(fs.readFileSync(names[1]!, 'utf8')).to.equal('');
    expect(fs.readFileSync(target, 'utf8')).to.equal('{"secret":true}\n');
    expect(mode(target)).to.equal(0o600);
    expect(fs.existsSync(names[2]!)).to.equal(false);
  });

  it('replaces a symlink planted at the target instead of following it, and leaves no temporary file', function () {
    const target = path.join(dir, 'export.json');
    fs.symlinkSync(victim, target);
    writeOwnerOnlyFile(target, 'export\n');
    expect(fs.readFileSync(victim, 'utf8')).to.equal('victim data\n');
    expect(fs.lstatSync(target).isSymbolicLink()).to.equal(false);
    expect(fs.readFileSync(target, 'utf8')).to.equal('export\n');
    expect(mode(target)).to.equal(0o600);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['export.json', 'victim']);
  });

  it('makes an existing world-readable export owner-only', function () {
    const target = path.join(dir, 'export.json');
    fs.writeFileSync(target, 'old\n', { mode: 0o644 });
    writeOwnerOnlyFile(target, 'new\n');
    expect(mode(target)).to.equal(0o600);
    expect(fs.readFileSync(target, 'utf8')).to.equal('new\n');
  });

  it('gives up after a few names taken, and leaves the target alone', function () {
    const target = path.join(dir, 'export.json');
    const taken = path.join(dir, 'taken');
    fs.writeFileSync(taken, '');
    expect(() => writeOwnerOnlyFile(target, 'x', () => taken)).to.throw(/EEXIST/);
    expect(fs.existsSync(target)).to.equal(false);
    expect(fs.readFileSync(taken, 'utf8')).to.equal('');
  });
});
