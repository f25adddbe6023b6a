// Small building blocks shared by the pages.
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { subscribe, type Notice } from '../notify.js';
import { tone } from '../format.js';

export function Pill({ state, label }: { state: string; label?: string }) {
  return <span class={`pill ${tone(state)}`}>{label ?? state}</span>;
}

/** An error in place of (or above) what it concerns: never a blank page. */
export function ErrorNote({ error, stale }: { error: string | null | undefined; stale?: boolean }) {
  if (!error) return null;
  return (
    <p class="error-note" role="alert">
      {error}
      {stale ? <span class="muted"> (showing the last values received)</span> : null}
    </p>
  );
}

export function Stat({ label, children, wide }: { label: string; children: ComponentChildren; wide?: boolean }) {
  return (
    <div class={wide ? 'stat wide' : 'stat'}>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </div>
  );
}

export function Card({ title, children, actions, id, sub }: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string; sub?: ComponentChildren }) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <section class="card" id={id} aria-labelledby={headingId}>
      <header class="card-head">
        <h2 id={headingId}>{title}</h2>
        {sub ? <span class="sub">{sub}</span> : null}
        <span class="spacer" />
        {actions}
      </header>
      {children}
    </section>
  );
}

export function Progress({ percent, label }: { percent: number | null; label: string }) {
  return (
    <div class="progress">
      <progress max={100} value={percent ?? undefined} aria-label={label}>
        {percent === null ? '' : `${percent}%`}
      </progress>
    </div>
  );
}

/**
 * A modal confirmation (the native <dialog>: focus is trapped and Escape cancels). `open`
 * shows it; `onClose(true)` when confirmed.
 */
export function Confirm({ open, title, children, confirmLabel, danger, onClose }: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onClose: (confirmed: boolean) => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return (
    <dialog ref={ref} class="confirm" aria-labelledby={titleId} onCancel={(e) => { e.preventDefault(); onClose(false); }}>
      <h2 id={titleId}>{title}</h2>
      <div class="confirm-body">{children}</div>
      <div class="actions">
        <button type="button" onClick={() => onClose(false)} autofocus>Cancel</button>
        <button type="button" class={danger ? 'danger-solid' : 'primary'} onClick={() => onClose(true)}>{confirmLabel}</button>
      </div>
    </dialog>
  );
}

/** Short-lived messages at the bottom of the window (what an action did), read out by screen readers. */
export function Toaster() {
  const [items, setItems] = useState<Notice[]>([]);
  useEffect(() => subscribe((n) => {
    setItems((xs) => [...xs.slice(-2), n]);
    window.setTimeout(() => setItems((xs) => xs.filter((x) => x !== n)), n.bad ? 9000 : 5000);
  }), []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((n, i) => <p key={i} class={n.bad ? 'toast bad' : 'toast'}>{n.text}</p>)}
    </div>
  );
}
