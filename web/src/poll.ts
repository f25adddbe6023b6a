// Polling: each call keeps its last good answer when a later one fails, so that a page never
// goes blank while Sluice or a Redis is unreachable: it shows what it knew and the error.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from './api.js';

export const POLL_MS = 2000;

export interface Polled<T> {
  data: T | undefined;
  error: string | null;
  /** when the last answer came (ms) */
  at: number | null;
  refresh: () => Promise<void>;
}

export function usePoll<T>(read: () => Promise<T>, deps: readonly unknown[], intervalMs = POLL_MS): Polled<T> {
  const [state, setState] = useState<{ data: T | undefined; error: string | null; at: number | null }>({ data: undefined, error: null, at: null });
  const readRef = useRef(read);
  readRef.current = read;
  const alive = useRef(true);
  const generation = useRef(0);
  const refresh = useCallback(async (): Promise<void> => {
    const mine = generation.current;
    try {
      const data = await readRef.current();
      if (alive.current && mine === generation.current) setState({ data, error: null, at: Date.now() });
    } catch (err) {
      if (alive.current && mine === generation.current) setState((s) => ({ ...s, error: errorText(err) }));
    }
  }, []);
  useEffect(() => {
    alive.current = true;
    generation.current++;
    setState({ data: undefined, error: null, at: null });
    let timer: number | undefined;
    const loop = async (): Promise<void> => {
      await refresh();
      if (alive.current) timer = window.setTimeout(() => void loop(), intervalMs);
    };
    void loop();
    return () => {
      alive.current = false;
      window.clearTimeout(timer);
    };
  }, deps);
  return { ...state, refresh };
}
