// The JavaScript that runs inside a sink's isolate, before the user's code: it keeps its own
// copies of the built-ins it needs (user code may replace the global ones), removes the few
// globals that could block the thread, and defines
//
//   define(kind, missing, factory)   registers a user function (called once per function at start)
//   run(batchJson, budgetMs)         runs the functions over a batch of messages → results JSON
//   stage()                          the function running when the last call was cut short
//
// Input: a JSON array of [action, record, changes, metadata] tuples.
// Output: a JSON array with, per message, 0 (filtered out), [value|null, route|null], or an
// error string. Nothing but these two strings ever crosses the isolate boundary.
export const RUNTIME_SOURCE = String.raw`
(function (g) {
  "use strict";
  const parse = JSON.parse, stringify = JSON.stringify, now = Date.now;
  const isInteger = Number.isInteger, isFiniteNumber = Number.isFinite, isArray = Array.isArray;
  const keysOf = Object.keys, defineProperty = Object.defineProperty, hasOwn = Object.prototype.hasOwnProperty, toStr = Object.prototype.toString;
  const PromiseCtor = Promise, StringCtor = String;
  const ACTIONS = ["insert", "update", "delete", "read"];
  const fns = { filter: null, transform: null, route: null };
  let routeFields = [];
  let current = "";
  let last = "";

  // nothing that can block the thread (Atomics.wait) or leave the JS language
  delete g.Atomics;
  delete g.SharedArrayBuffer;
  delete g.WebAssembly;

  function clip(s) {
    return s.length > 300 ? s.slice(0, 300) + "…" : s;
  }

  function describeError(e) {
    try {
      if (e !== null && typeof e === "object" && typeof e.message === "string") {
        const name = typeof e.name === "string" && e.name !== "" ? e.name : "Error";
        return clip(e.message === "" ? name : name + ": " + e.message);
      }
      return clip("a thrown " + (e === null ? "null" : typeof e) + " (" + StringCtor(e) + ")");
    } catch (_) {
      return "an unprintable thrown value";
    }
  }

  function describeValue(v) {
    try {
      if (v === undefined) return "undefined";
      if (v === null) return "null";
      if (typeof v === "string") return clip(stringify(v));
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return StringCtor(v);
      if (typeof v === "function") return "a function";
      if (typeof v === "symbol") return "a symbol";
      if (isThenable(v)) return "a Promise (functions must be synchronous)";
      if (isArray(v)) return "an array";
      return "an object";
    } catch (_) {
      return "an unprintable value";
    }
  }

  function isThenable(v) {
    try {
      return v instanceof PromiseCtor || (v !== null && (typeof v === "object" || typeof v === "function") && typeof v.then === "function");
    } catch (_) {
      return false;
    }
  }

  /** A deep copy of parsed JSON, so that one function's changes to its arguments do not reach the next. */
  function clone(v) {
    if (v === null || typeof v !== "object") return v;
    if (isArray(v)) {
      const a = new Array(v.length);
      for (let i = 0; i < v.length; i++) a[i] = clone(v[i]);
      return a;
    }
    // defined, not assigned: a "__proto__" key (a column, a JSON key) stays data, and a setter
    // user code put on Object.prototype is not called
    const o = {};
    const keys = keysOf(v);
    for (let i = 0; i < keys.length; i++) defineProperty(o, keys[i], { value: clone(v[keys[i]]), enumerable: true, writable: true, configurable: true });
    return o;
  }

  function define(kind, missing, factory, fields) {
    const module = { exports: {} };
    const require = function (name) {
      throw new Error("module loading is not allowed (import or require of " + stringify(StringCtor(name)) + ")");
    };
    const fn = factory(module, module.exports, require);
    if (typeof fn !== "function") throw new Error(missing);
    const tag = toStr.call(fn);
    if (tag === "[object AsyncFunction]" || tag === "[object AsyncGeneratorFunction]" || tag === "[object GeneratorFunction]") {
      throw new Error("must be a plain synchronous function (async functions and generators are not supported)");
    }
    fns[kind] = fn;
    routeFields = fields;
  }

  function unusable(kind, why) {
    return kind + " returned an unusable value: " + why;
  }

  function checkRoute(r) {
    if (r === null || typeof r !== "object" || isArray(r) || isThenable(r)) {
      return unusable("route", "expected an object like {key, action, expire_ms} (got " + describeValue(r) + ")");
    }
    const out = {};
    for (const k of keysOf(r)) {
      const v = r[k];
      if (routeFields.indexOf(k) < 0) {
        return unusable("route", "unknown field " + stringify(k) + " (this sink takes " + routeFields.join(", ") + ")");
      }
      if (v === undefined || v === null) continue;
      if (k === "action") {
        if (ACTIONS.indexOf(v) < 0) return unusable("route", "action must be one of insert, update, delete, read (got " + describeValue(v) + ")");
        out.action = v;
      } else if (k === "expire_ms") {
        if (typeof v !== "number" || !isInteger(v) || v <= 0) return unusable("route", "expire_ms must be a positive integer (got " + describeValue(v) + ")");
        out.expire_ms = v;
      } else if (k === "score") {
        if (typeof v !== "number" || !isFiniteNumber(v)) return unusable("route", "score must be a finite number (got " + describeValue(v) + ")");
        out.score = v;
      } else {
        // key, channel, member, field: non-empty strings (finite numbers are accepted as text)
        if (typeof v === "number" && isFiniteNumber(v)) out[k] = StringCtor(v);
        else if (typeof v === "string" && v !== "") out[k] = v;
        else return unusable("route", k + " must be a non-empty string (got " + describeValue(v) + ")");
      }
    }
    return out;
  }

  function storable(v) {
    if (v === undefined) return unusable("transform", "undefined (return the value to store)");
    if (typeof v === "string") return [v];
    if (typeof v === "number" || typeof v === "bigint") return [StringCtor(v)];
    if (typeof v === "function" || typeof v === "symbol" || isThenable(v)) return unusable("transform", describeValue(v));
    let s;
    try {
      s = stringify(v);
    } catch (e) {
      return unusable("transform", "cannot be serialized as JSON: " + describeError(e));
    }
    if (typeof s !== "string") return unusable("transform", describeValue(v));
    return [s];
  }

  function one(m, budget, several) {
    const action = m[0], record = m[1], changes = m[2], metadata = m[3];
    const started = now();
    // with several functions, all but the last one get copies: each sees the message as it came
    const call = function (kind) {
      current = kind;
      const r = several && kind !== last ? fns[kind](action, clone(record), clone(changes), clone(metadata)) : fns[kind](action, record, changes, metadata);
      // a returned promise is refused below; its rejection must not fail the whole call
      if (isThenable(r)) {
        try { r.then(undefined, function () {}); } catch (_) {}
      }
      return r;
    };
    const late = function (kind) {
      const took = now() - started;
      return took > budget ? kind + " timed out after " + budget + " ms (took " + took + " ms)" : null;
    };
    let value = null, route = null, r, t;
    if (fns.filter !== null) {
      try { r = call("filter"); } catch (e) { return "filter threw: " + describeError(e); }
      if ((t = late("filter")) !== null) return t;
      if (r !== true && r !== false) return unusable("filter", "expected true or false (got " + describeValue(r) + ")");
      if (r === false) return 0;
    }
    if (fns.transform !== null) {
      try { r = call("transform"); } catch (e) { return "transform threw: " + describeError(e); }
      if ((t = late("transform")) !== null) return t;
      const s = storable(r);
      if (typeof s === "string") return s;
      value = s[0];
    }
    if (fns.route !== null) {
      try { r = call("route"); } catch (e) { return "route threw: " + describeError(e); }
      if ((t = late("route")) !== null) return t;
      let checked;
      try { checked = checkRoute(r); } catch (e) { return unusable("route", describeError(e)); }
      if (typeof checked === "string") return checked;
      route = checked;
    }
    return [value, route];
  }

  function run(batchJson, budget) {
    const batch = parse(batchJson);
    const several = (fns.filter !== null) + (fns.transform !== null) + (fns.route !== null) > 1;
    last = fns.route !== null ? "route" : fns.transform !== null ? "transform" : "filter";
    const out = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) out[i] = one(batch[i], budget, several);
    current = "";
    return stringify(out);
  }

  g.__sluice = { define: define, run: run, stage: function () { return current; } };
})(globalThis);
`;
