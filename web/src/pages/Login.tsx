import { useState } from 'preact/hooks';
import { api, ApiError, auth, errorText } from '../api.js';

/** Asks for http.token once; it is kept in this tab's sessionStorage, never in a URL. */
export function Login({ onDone, expired }: { onDone: () => void; expired: boolean }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(expired ? 'The token was refused: enter it again.' : null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    auth.set(token.trim());
    try {
      await api.source();
      onDone();
    } catch (err) {
      auth.clear();
      setError(err instanceof ApiError && (err.status === 401 || err.status === 403) ? 'This token is not the one in http.token.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <section class="card" aria-labelledby="login-title">
        <h1 id="login-title">Sign in to Sluice</h1>
        <p class="muted">This Sluice requires the API token (<code>http.token</code> in sluice.yaml). It is kept in this browser tab only, and forgotten when the tab closes.</p>
        <form onSubmit={(e) => void submit(e)}>
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required value={token} onInput={(e) => setToken(e.currentTarget.value)} aria-describedby={error ? 'login-error' : undefined} />
          <button class="primary" type="submit" disabled={busy || token.trim() === ''}>{busy ? 'Checking…' : 'Sign in'}</button>
          {error ? <p id="login-error" class="error-note" role="alert">{error}</p> : null}
        </form>
      </section>
    </main>
  );
}
