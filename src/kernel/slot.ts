/**
 * State a module attaches to a kernel object (a Kernel, a File, an eventfd), like a WeakMap
 * keyed by the object but kept on the object itself, under a symbol. vhostsim's modules keep
 * per-kernel and per-file state whose value refers back to its key (a module's state names
 * its kernel); in a WeakMap, such an entry is an ephemeron that V8's minor GC keeps alive, so
 * every short-lived kernel (the explorer boots one per execution) would be promoted to the
 * old generation and collected only by full GCs. On the object, it dies with the object.
 */
export class Slot<K extends object, V> {
  private readonly key: symbol;
  constructor(name: string) {
    this.key = Symbol(name);
  }

  get(o: K): V | undefined {
    return (o as unknown as Record<symbol, V | undefined>)[this.key];
  }

  /** sets the value (not enumerable: the object's own properties stay as they were) */
  set(o: K, v: V): this {
    if (this.key in o) (o as unknown as Record<symbol, V>)[this.key] = v;
    else
      Object.defineProperty(o, this.key, { value: v, writable: true, configurable: true, enumerable: false });
    return this;
  }

  has(o: K): boolean {
    return this.key in o;
  }
}
