// One external store per key, the way TanStack Query's useBaseQuery holds its
// observer: created during render by useState's initializer (so the very first
// render already reads the store's own snapshot, e.g. "connecting", rather than a
// placeholder "closed"), read through useSyncExternalStore, and started and stopped
// by an effect. Creating a store has no side effects (no socket, no timer), so a
// render React throws away (StrictMode, a suspended render) leaves nothing behind;
// `start` opens the socket once the component is committed, and `stop` may be
// followed by `start` again (StrictMode runs every effect twice).

import { useEffect, useState, useSyncExternalStore } from "react";

export interface Store<S> {
  subscribe(listener: () => void): () => void;
  getSnapshot(): S;
  start(): void;
  stop(): void;
}

const idleSubscribe = (): (() => void) => () => undefined;

function sameKey(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/**
 * The store for `key` (a new one whenever an element of `key` changes; `create`
 * may return null for "no store", e.g. without a token) and its current snapshot,
 * `idle` when there is no store.
 */
export function useStore<S, T extends Store<S>>(
  key: readonly unknown[],
  create: () => T | null,
  idle: S,
): { store: T | null; snapshot: S } {
  const [held, setHeld] = useState(() => ({ key, store: create() }));
  let current = held;
  if (!sameKey(held.key, key)) {
    // React's pattern for state derived from props: replace it during render; React
    // re-renders at once with the new store, before anything is committed.
    current = { key, store: create() };
    setHeld(current);
  }
  const { store } = current;

  useEffect(() => {
    if (store === null) return;
    store.start();
    return () => store.stop();
  }, [store]);

  const snapshot = useSyncExternalStore(
    store === null ? idleSubscribe : store.subscribe,
    store === null ? () => idle : store.getSnapshot,
  );
  return { store, snapshot };
}
