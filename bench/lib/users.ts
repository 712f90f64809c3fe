/**
 * Signs up `count` users through `POST /users` on a Warren API and returns
 * their API tokens. Handles are `<prefix>_<i>` (cut to the 30 characters a
 * handle may have); a refused sign-up fails the benchmark with the answer.
 */
export async function signUpUsers(baseUrl: string, count: number, prefix: string): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${baseUrl}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: `${prefix}_${i}`.slice(0, 30), displayName: `Bench ${i}` }),
    });
    if (res.status !== 201) throw new Error(`POST /users answered ${res.status}: ${await res.text()}`);
    tokens.push(((await res.json()) as { token: string }).token);
  }
  return tokens;
}
