/**
 * The in-process parts of `npm run bench:monitoring` (no cluster): how many prediction-log
 * records one monitor core digests per second (decode of the real columnar messages, expansion to
 * records, windows, sketches), and how long after a shift injected at a known moment the monitor
 * raises its drift alert, on a virtual clock (event-based: the alert's `at` and its window's end
 * against the injection time).
 */
import { ContentType, VirtualClock, decode, encode, seededRandom } from '../../cluster/index.ts';
import { MonitorCore, PredictionLog, ReplicaProfiler, batchRecords, isProfileMessage, type LoggedTensor, type ProfileMessage } from '../../ml/index.ts';
import { buildReferenceProfile, type MonitoredRow, type ReferenceProfile } from '../../ml/index.ts';
import { fraudReference, fraudScore, fraudTraffic } from '../../test/fixtures/monitoring-monitor.ts';

const F = 32;
const fp32 = (name: string, rows: number[][]): LoggedTensor => ({ name, datatype: 'FP32', data: Float32Array.from(rows.flat()), dims: [rows.length, rows[0]!.length] });
const score = (x: number[]) => 1 / (1 + Math.exp(-x.reduce((s, v) => s + v, 0) / 8));

/** A 32-feature reference (features X_0…X_31, score Y), like the serving bench's MLP input. */
function wideReference(r: () => number): ReferenceProfile {
  const rows: MonitoredRow[] = Array.from({ length: 2000 }, () => {
    const x = Array.from({ length: F }, () => r() * 2 - 1);
    return { features: Object.fromEntries(x.map((v, j) => [`X_${j}`, v])), outputs: { Y: score(x) }, label: r() < score(x) ? 1 : 0 };
  });
  return buildReferenceProfile(rows, undefined, { createdAt: 0 });
}

/** The messages one replica publishes for `n` one-row requests (all logged; its profile deltas too). */
async function replicaMessages(n: number, reference: ReferenceProfile, r: () => number): Promise<Uint8Array[]> {
  const clock = new VirtualClock(1_700_000_000_000);
  const messages: Uint8Array[] = [];
  const profiler = new ReplicaProfiler('bench', 1, 'r0', reference, 3_600_000);
  const log = new PredictionLog({ model: 'bench', version: 1, spec: { sampleRate: 1, batchRecords: 500, bufferRecords: n + 1 }, publish: async (b) => void messages.push(b), encode: (m) => encode(m, ContentType.MSGPACK), profiler, clock });
  for (let i = 0; i < n; i++) {
    const x = Array.from({ length: F }, () => r() * 2 - 1);
    const p = log.begin([fp32('X', [x])], `q${i}`, undefined, 0)!;
    log.end(p, [fp32('Y', [[score(x)]])], 1);
  }
  await log.close();
  return messages;
}

export interface DigestRound {
  /** Records/s with drift on the logged records (the monitor profiles each record). */
  fromLog: number;
  /** Records/s with drift on the replicas' merged profiles (records feed only scores and labels). */
  fromReplicas: number;
  records: number;
}

/** One round: the same messages digested by a core profiling records, then by one merging replica profiles. */
export async function digestRound(n = 50_000, seed = 1): Promise<DigestRound> {
  const r = seededRandom(seed);
  const reference = wideReference(r);
  const messages = await replicaMessages(n, reference, r);
  const run = (useProfiles: boolean): number => {
    const core = new MonitorCore('bench', 1, reference, { windows: [3_600_000] });
    const t0 = performance.now();
    let recs = 0;
    for (const m of messages) {
      const msg = decode(m, ContentType.MSGPACK);
      if (isProfileMessage(msg)) {
        if (useProfiles) core.addProfile(msg);
        continue;
      }
      for (const rec of batchRecords(msg) ?? []) {
        core.addPrediction(rec);
        recs++;
      }
    }
    core.close(Number.MAX_SAFE_INTEGER / 2, true);
    return recs / ((performance.now() - t0) / 1000);
  };
  return { fromLog: run(false), fromReplicas: run(true), records: n };
}

export interface Detection {
  /** Where in its 60 s window the shift was injected (s). */
  injectedAtS: number;
  /** Alert raised − injection (virtual s), and the alerting window's end − injection. */
  alertAfterS: number;
  windowEndAfterS: number;
  window: string;
}

/**
 * Three replicas (10 % sampling, their own profiles) serve 150 rows/s of fraud traffic on a
 * virtual clock; the generator's drift knob is turned to 1 at `offsetS` into a 60 s window. The
 * monitor (windows of 60 s, lateness 5 s) digests what they publish after every 100 ms step.
 */
export async function detectShift(offsetS: number, seed = 7): Promise<Detection | undefined> {
  const WINDOW = 60_000;
  const T0 = 1_700_000_040_000 - (1_700_000_040_000 % WINDOW);
  const clock = new VirtualClock(T0);
  const reference = fraudReference();
  const core = new MonitorCore('fraud', 1, reference, { windows: [WINDOW], latenessMs: 5000 });
  const draws = seededRandom(seed);
  const inbox: Uint8Array[] = [];
  const logs = Array.from({ length: 3 }, (_, k) => {
    const profiler = new ReplicaProfiler('fraud', 1, `r${k}`, reference, WINDOW);
    return new PredictionLog({ model: 'fraud', version: 1, spec: { sampleRate: 0.1, flushMs: 200, profileMs: 1000 }, publish: async (b) => void inbox.push(b), encode: (m) => encode(m, ContentType.MSGPACK), profiler, clock, random: draws });
  });
  // Skip the first window (undrifted, warm); inject in the second.
  const inject = T0 + WINDOW + offsetS * 1000;
  const calm = fraudTraffic({ rows: 40_000, seed: seed + 1 }).rows;
  const shifted = fraudTraffic({ rows: 40_000, seed: seed + 2, drift: 1 }).rows;
  let i = 0;
  for (let step = 0; step < 5 * 600; step++) {
    const now = clock.now();
    const src = now >= inject ? shifted : calm;
    for (const log of logs) {
      const x = src.slice(i % 39_990, (i % 39_990) + 5);
      i += 5;
      const p = log.begin([fp32('X', x)], `q${i}`, undefined, 0);
      if (p) log.end(p, [fp32('Y', x.map((row) => [fraudScore(row.map((v) => Math.fround(v)))]))], 1);
    }
    clock.advance(100);
    await new Promise((r) => setImmediate(r));
    for (const m of inbox.splice(0)) {
      const msg = decode(m, ContentType.MSGPACK);
      if (isProfileMessage(msg)) core.addProfile(msg as ProfileMessage);
      else for (const rec of batchRecords(msg) ?? []) core.addPrediction(rec);
    }
    core.close(clock.now());
    const alert = core.takeAlerts().find((a) => a.rule === 'feature-drift' || a.rule === 'dataset-drift');
    if (alert) {
      for (const log of logs) await log.close();
      if (alert.windowEnd <= inject) return undefined; // a false alarm before the shift
      return { injectedAtS: offsetS, alertAfterS: (alert.at - inject) / 1000, windowEndAfterS: (alert.windowEnd - inject) / 1000, window: alert.window };
    }
  }
  for (const log of logs) await log.close();
  return undefined;
}

export interface LogCost {
  /** Replica CPU µs per one-row request (user + system, `process.cpuUsage`), log included, flush and encode included. */
  none: number;
  logged: number;
  loggedProfiled: number;
  sampledProfiled: number;
}

/**
 * What the log costs a replica's event loop per request, in CPU time (less sensitive to a busy
 * machine than wall time): `n` one-row 32-feature requests through no log, the log at 100 %, the
 * log at 100 % with the replica profile, and at 10 % with the profile; every message encoded
 * (MessagePack), the publish itself a no-op.
 */
export async function logCostRound(n = 20_000, seed = 3): Promise<LogCost> {
  const r = seededRandom(seed);
  const reference = wideReference(r);
  const inputs = Array.from({ length: 1000 }, () => Array.from({ length: F }, () => r() * 2 - 1));
  const arm = async (rate: number | undefined, profiled: boolean): Promise<number> => {
    const clock = new VirtualClock(1_700_000_000_000);
    let bytes = 0;
    const log =
      rate === undefined
        ? undefined
        : new PredictionLog({
            model: 'bench',
            version: 1,
            spec: { sampleRate: rate, batchRecords: 500, bufferRecords: n + 1 },
            publish: async (b) => void (bytes += b.length),
            encode: (m) => encode(m, ContentType.MSGPACK),
            ...(profiled ? { profiler: new ReplicaProfiler('bench', 1, 'r0', reference, 3_600_000) } : {}),
            clock,
            random: r,
          });
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const x = inputs[i % 1000]!;
      // What a replica has per request anyway: the decoded input and the output tensor.
      const X = fp32('X', [x]);
      const Y = fp32('Y', [[0.5]]);
      const p = log?.begin([X], `q${i}`, undefined, 0);
      if (p) log!.end(p, [Y], 1);
      if (i % 500 === 499) await new Promise((res) => setImmediate(res));
    }
    await log?.close();
    const c = process.cpuUsage(c0);
    void bytes;
    return (c.user + c.system) / n;
  };
  return { none: await arm(undefined, false), logged: await arm(1, false), loggedProfiled: await arm(1, true), sampledProfiled: await arm(0.1, true) };
}
