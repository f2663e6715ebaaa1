import { useState } from "preact/hooks";

export interface SignInProps {
  /** Why the last key was refused, if one was. */
  readonly problem: string | undefined;
  /** Resolves with the reason the key was refused, or undefined once signed in. */
  readonly onSignIn: (key: string) => Promise<string | undefined>;
}

export function SignIn({ problem, onSignIn }: SignInProps) {
  const [key, setKey] = useState("");
  const [error, setError] = useState(problem);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (key.trim() === "") {
      setError("Enter an API key.");
      return;
    }
    setBusy(true);
    const refused = await onSignIn(key.trim());
    setBusy(false);
    if (refused !== undefined) setError(refused);
  };

  return (
    <main class="centered">
      <div class="card sign-in">
        <h1>Diatonic console</h1>
        <p>
          Sign in with an API key that has the <code>admin</code> scope. The key stays in this browser tab only (session storage) and is
          sent to this gateway alone.
        </p>
        <form onSubmit={(event) => void submit(event)}>
          <label for="api-key">Admin API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autocomplete="off"
            spellcheck={false}
            value={key}
            onInput={(event) => setKey(event.currentTarget.value)}
            aria-describedby={error !== undefined ? "sign-in-error" : undefined}
          />
          {error !== undefined && (
            <p id="sign-in-error" role="alert" class="error">
              {error}
            </p>
          )}
          <button type="submit" disabled={busy}>
            {busy ? "Checking…" : "Sign in"}
          </button>
        </form>
      </div>
    </main>
  );
}
