// A bounded cache of loads in flight or done, each weighed once it is done (a parsed file by its
// runs, a folder by its entries), so a bound on the total weight bounds memory.
import type { LRUCache } from 'lru-cache';

/** The cached load of `key`, or a new one; a failed load is dropped so the next call retries. */
export function cachedLoad<K extends {}, V>(cache: LRUCache<K, Promise<V>>, key: K, load: () => Promise<V>, weigh: (v: V) => number): Promise<V> {
  const hit = cache.get(key);
  if (hit) return hit;
  const p = load();
  cache.set(key, p, { size: 1 });
  p.then(
    (v) => cache.peek(key) === p && cache.set(key, p, { size: Math.max(1, weigh(v)) }),
    () => cache.peek(key) === p && cache.delete(key),
  );
  return p;
}
