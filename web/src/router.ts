// Hash routes (#/, #/sinks/orders, #/new, #/sinks/orders/edit): the server serves one page, and
// nothing of the route reaches its logs.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'overview' }
  | { page: 'sink'; name: string; tab: 'overview' | 'messages' | 'config' }
  | { page: 'new' }
  | { page: 'edit'; name: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '').map(decodeURIComponent);
  if (parts[0] === 'new') return { page: 'new' };
  if (parts[0] === 'sinks' && parts[1] !== undefined) {
    if (parts[2] === 'edit') return { page: 'edit', name: parts[1] };
    const tab = parts[2] === 'messages' || parts[2] === 'config' ? parts[2] : 'overview';
    return { page: 'sink', name: parts[1], tab };
  }
  return { page: 'overview' };
}

export function href(route: Route): string {
  switch (route.page) {
    case 'overview':
      return '#/';
    case 'new':
      return '#/new';
    case 'edit':
      return `#/sinks/${encodeURIComponent(route.name)}/edit`;
    case 'sink':
      return `#/sinks/${encodeURIComponent(route.name)}${route.tab === 'overview' ? '' : `/${route.tab}`}`;
  }
}

export function go(route: Route): void {
  location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
