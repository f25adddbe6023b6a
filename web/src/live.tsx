// What every page shows, polled once for all of them every 2 s: health, source, sinks, and the
// server's history (the last 15 minutes, then only the new samples).
import { createContext, type ComponentChildren } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';
import { api, errorText, type ApiHealth, type ApiHistorySample, type ApiSinks, type ApiSource } from './api.js';
import { POLL_MS, usePoll, type Polled } from './poll.js';

export interface Live {
  health: Polled<ApiHealth>;
  source: Polled<ApiSource>;
  sinks: Polled<ApiSinks>;
  history: { samples: ApiHistorySample[]; error: string | null; windowMs: number };
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const live = useContext(LiveContext);
  if (!live) throw new Error('useLive outside LiveProvider');
  return live;
}

function useHistory(): Live['history'] {
  const [state, setState] = useState<Live['history']>({ samples: [], error: null, windowMs: 15 * 60_000 });
  const last = useRef<number | undefined>(undefined);
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const loop = async (): Promise<void> => {
      try {
        const h = await api.history(last.current);
        if (!alive) return;
        const newest = h.samples[h.samples.length - 1];
        if (newest) last.current = newest.t;
        setState((s) => {
          const keep = Math.ceil(h.window_ms / h.interval_ms);
          const samples = h.samples.length === 0 ? s.samples : [...s.samples, ...h.samples].slice(-keep);
          return { samples, error: null, windowMs: h.window_ms };
        });
      } catch (err) {
        if (alive) setState((s) => ({ ...s, error: errorText(err) }));
      }
      if (alive) timer = window.setTimeout(() => void loop(), POLL_MS);
    };
    void loop();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, []);
  return state;
}

export function LiveProvider({ children }: { children: ComponentChildren }) {
  const health = usePoll(api.health, []);
  const source = usePoll(api.source, []);
  const sinks = usePoll(api.sinks, []);
  const history = useHistory();
  return <LiveContext.Provider value={{ health, source, sinks, history }}>{children}</LiveContext.Provider>;
}
