/**
 * How logged column names meet a reference profile's names. A replica logs a tensor input of k
 * elements per row as columns `<input>_0` … `<input>_<k-1>`, while a trained version's reference
 * uses the dataset's column names: when the reference's names are not among the logged ones but
 * one input has exactly as many columns, they map by position. Shared by the monitor (records)
 * and the replicas' own profiles (replica-profile.ts), so both name a column alike.
 */

/** `logged name → reference name`, or null when the names already match (or nothing maps). */
export function mapColumns(referenceFeatures: readonly string[], logged: Iterable<string>): Record<string, string> | null {
  const names = new Set(logged);
  const ref = referenceFeatures;
  if (ref.length === 0 || ref.every((f) => names.has(f))) return null;
  const k = ref.length;
  const inputs = new Set([...names].map((c) => c.replace(/_\d+$/, '')));
  for (const input of inputs) {
    const cols = Array.from({ length: k }, (_, i) => `${input}_${i}`);
    if (cols.every((c) => names.has(c)) && !names.has(`${input}_${k}`)) return Object.fromEntries(cols.map((c, i) => [c, ref[i]!]));
  }
  return null;
}

/** The logged column names of an input with `per` elements per row: `<input>` for one, `<input>_<i>` otherwise. */
export function columnNames(input: string, per: number): string[] {
  return per === 1 ? [input] : Array.from({ length: per }, (_, k) => `${input}_${k}`);
}
