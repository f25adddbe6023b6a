// What an action did, said once at the bottom of the window (components/ui.tsx, Toaster).
export interface Notice {
  text: string;
  bad: boolean;
}

const listeners = new Set<(n: Notice) => void>();

export function notify(text: string, bad = false): void {
  for (const f of listeners) f({ text, bad });
}

export function subscribe(f: (n: Notice) => void): () => void {
  listeners.add(f);
  return () => {
    listeners.delete(f);
  };
}
