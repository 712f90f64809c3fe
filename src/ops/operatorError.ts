/** @file What an operator command says when it cannot do its job: one line on stderr, and its exit code. */

export class OperatorError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'OperatorError';
  }
}
