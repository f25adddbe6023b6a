import { useEffect, useState } from 'preact/hooks';
import { auth, onUnauthorized } from './api.js';
import { Toaster } from './components/ui.js';
import { LiveProvider, useLive } from './live.js';
import { Login } from './pages/Login.js';
import { Overview } from './pages/Overview.js';
import { SinkForm } from './pages/SinkForm.js';
import { SinkPage } from './pages/SinkPage.js';
import { href, useRoute, type Route } from './router.js';

function Status() {
  const { health, source } = useLive();
  const text = source.error && !source.data ? 'unreachable' : health.data ? (health.data.status === 'ok' ? `healthy, ${health.data.source}` : `unhealthy (${health.data.problems.length})`) : 'connecting…';
  const bad = Boolean(source.error) || health.data?.status === 'unhealthy';
  return <span class={`conn ${bad ? 'bad' : 'ok'}`} id="conn" aria-live="polite">{text}</span>;
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'overview':
      return <Overview />;
    case 'new':
      return <SinkForm key="new" />;
    case 'edit':
      return <SinkForm key={`edit:${route.name}`} edit={route.name} />;
    case 'sink':
      return <SinkPage name={route.name} tab={route.tab} />;
  }
}

export function App() {
  const route = useRoute();
  const [signedIn, setSignedIn] = useState(!auth.required || auth.token !== '');
  const [expired, setExpired] = useState(false);
  useEffect(() => onUnauthorized(() => {
    auth.clear();
    setExpired(true);
    setSignedIn(false);
  }), []);
  useEffect(() => {
    document.title = route.page === 'sink' || route.page === 'edit' ? `${route.name} · Sluice` : route.page === 'new' ? 'New sink · Sluice' : 'Sluice console';
  }, [route]);
  if (!signedIn) return <Login expired={expired} onDone={() => { setExpired(false); setSignedIn(true); }} />;
  return (
    <LiveProvider>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href={href({ page: 'overview' })}>Sluice</a>
        <nav aria-label="Main">
          <a href={href({ page: 'overview' })} aria-current={route.page === 'overview' ? 'page' : undefined}>Overview</a>
          <a href={href({ page: 'new' })} aria-current={route.page === 'new' ? 'page' : undefined}>New sink</a>
        </nav>
        <span class="spacer" />
        <Status />
        {auth.required ? <button type="button" class="ghost" onClick={() => { auth.clear(); setSignedIn(false); }}>Forget token</button> : null}
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
      <Toaster />
    </LiveProvider>
  );
}
