// The token field shown when no token came in the URL (or the one we had was refused).

import { useState, type FormEvent } from "react";

export function TokenForm({ onToken, problem }: { onToken(token: string): void; problem?: string | null }) {
  const [value, setValue] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const token = value.trim();
    if (token) onToken(token);
  };
  return (
    <form className="token-form" onSubmit={submit} aria-label="Token">
      <h2>Sign in with a token</h2>
      <p>
        Paste a vmws token (<code>vmws token --sub you --perm read,control,console</code>), or open the URL that{" "}
        <code>vmws serve</code> prints.
      </p>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <input
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="eyJhbGciOi…"
        value={value}
        onChange={(e) => setValue(e.target.value)}
        aria-label="Token"
        data-testid="token-input"
      />
      <button type="submit">Use token</button>
    </form>
  );
}
