/**
 * Explanations in the replica (README "Governance" → "Explanations"): an explain request is
 * decoded like a prediction (tensor rows, or entities for a model trained on feature views),
 * then explained with the version's stored background (ml/governance/explain) — exact SHAP for a
 * linear/logistic graph, KernelSHAP for any model, integrated gradients on request — each with
 * ALL its perturbed rows in one batched onnxruntime run on an idle session of the replica, except
 * integrated gradients of a Shoal-trained MLP: its path points go through the kernels' backward
 * pass in one CPU kernels step (ml/governance/explain/gradients.ts).
 */
import { MlErrors } from '../errors.ts';
import type { Signature } from '../registry/schemas.ts';
import { decodeOip, decodePredict, type Decoded } from './codecs/index.ts';
import type { ExplainOptions, ItemError, JsonItem, JsonResult } from './messages.ts';
import type { PoolTensor } from './session-pool.ts';
import {
  denseBackground,
  explainKernels,
  explainReference,
  graphKind,
  groupAttributions,
  igBackwardRows,
  integratedGradients,
  integratedGradientsBackward,
  kernelShap,
  IG_BACKWARD_STEPS,
  linearShap,
  probeLinear,
  shoalMlp,
  type Attribution,
  type Background,
  type Evaluator,
  type ExplainReference,
  type GraphKind,
  type LinearModel,
  type Link,
  type Method,
  type ShoalMlp,
} from '../governance/explain/index.ts';

/** Rows one explain run may hold (perturbations of all the request's rows together). */
export const MAX_EXPLAIN_ROWS = 500_000;

/** KernelSHAP coalitions per row unless the request says (`?samples=`): 512 × 32 background rows = 16,384 rows in the run. */
export const DEFAULT_SAMPLES = 512;

export interface ExplainHost {
  label: string;
  name: string;
  version: number;
  /** What clients send (the public signature). */
  signature: Signature;
  /** The model's own signature (what the session takes). */
  model: Signature;
  /** A processor module wraps the model: explanations are refused (the model's inputs are not the client's). */
  processor: boolean;
  run(feeds: Record<string, PoolTensor>): Promise<Record<string, PoolTensor>>;
  entities?: ((format: JsonItem['format'], body: Uint8Array, headerLength: number | undefined) => Promise<Decoded | undefined>) | undefined;
  /** The ONNX graph's bytes (undefined when not readable: the graph check is then skipped). */
  modelBytes(): Promise<Uint8Array | undefined>;
  /** The version's stored reference profile JSON (parsed), or undefined. */
  reference(): Promise<unknown>;
  /** The model input's columns from its feature lineage (`view.feature=value` for one-hot), when it has one. */
  columns: string[] | undefined;
  failure(err: unknown): ItemError;
}

const utf8 = new TextEncoder();

export class ReplicaExplainer {
  readonly #h: ExplainHost;
  #ref: Promise<ExplainReference> | undefined;
  #graph: Promise<GraphKind | undefined> | undefined;
  readonly #linear = new Map<string, Promise<LinearModel | { notLinear: string }>>();
  /** Per output: the Shoal MLP whose backward pass integrated gradients use, or undefined (finite differences). */
  readonly #mlp = new Map<string, Promise<ShoalMlp | undefined>>();

  constructor(host: ExplainHost) {
    this.#h = host;
  }

  async explain(item: JsonItem): Promise<JsonResult> {
    try {
      const body = await this.#explain(item);
      return { body: utf8.encode(JSON.stringify(body)), batch: body.run_rows };
    } catch (err) {
      return this.#h.failure(err);
    }
  }

  async #explain(item: JsonItem) {
    const h = this.#h;
    const o: ExplainOptions = item.explain ?? {};
    if (h.processor) throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, 'it has a processor module (its model inputs are not what clients send)');
    if (h.model.inputs.length !== 1 || h.model.inputs[0]!.datatype !== 'FP32') throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, 'explanations need a model with one FP32 input of [rows, features]');
    let d = h.entities ? await h.entities(item.format, item.body, item.headerLength) : undefined;
    d ??= item.format === 'v1' ? decodePredict(h.signature, h.label, item.body) : decodeOip(h.signature, h.label, item.body, item.headerLength);
    const shape = d.shapes[0]!;
    if (shape.length !== 2) throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, `its input is [${shape.join(', ')}], not [rows, features]`);
    const [rows, D] = shape as [number, number];
    if (rows === 0) throw MlErrors.BAD_INPUT('an explain request needs at least one row');
    const x = d.inputs[0] as Float32Array;
    const inSpec = h.model.inputs[0]!;
    const outSpec = o.output ? h.model.outputs.find((t) => t.name === o.output) : h.model.outputs[0];
    if (!outSpec) throw MlErrors.BAD_INPUT(`unknown output "${o.output}"; the model's outputs: ${h.model.outputs.map((t) => t.name).join(', ')}`);

    const ref = await (this.#ref ??= h.reference().then((p): ExplainReference => explainReference(p) ?? {}).catch((): ExplainReference => ({})));
    if (!ref.background) throw MlErrors.NO_BACKGROUND(h.label);
    let bg: Background;
    try {
      bg = denseBackground(ref.background, D, o.background ?? 32);
    } catch (err) {
      throw MlErrors.NO_BACKGROUND(`${h.label} (its stored background does not fit: ${(err as Error).message})`);
    }
    const columns = ref.background.columns.length === D ? ref.background.columns : h.columns?.length === D ? h.columns : Array.from({ length: D }, (_, j) => `x${j}`);
    const graph = await (this.#graph ??= h.modelBytes().then((b) => (b ? graphKind(b, outSpec.name) : undefined)).catch(() => undefined));
    const link: Link = o.link && o.link !== 'auto' ? o.link : (graph?.link ?? 'identity');

    let runRows = 0;
    let col = o.column;
    const f: Evaluator = async (X, n) => {
      runRows += n;
      if (n > MAX_EXPLAIN_ROWS) throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, `${n} perturbed rows exceed one run's ${MAX_EXPLAIN_ROWS}: send fewer rows, or lower samples/steps/background`);
      let out: Record<string, PoolTensor>;
      try {
        out = await h.run({ [inSpec.name]: { type: 'float32', data: X, dims: [n, D] } });
      } catch (err) {
        throw MlErrors.INFERENCE_FAILED(h.label, (err as Error).message);
      }
      const t = out[outSpec.name];
      if (!t) throw MlErrors.INFERENCE_FAILED(h.label, `output "${outSpec.name}" missing`);
      const k = t.dims.length >= 2 ? t.dims[t.dims.length - 1]! : 1;
      const c = (col ??= k - 1);
      if (c >= k) throw MlErrors.BAD_INPUT(`column ${c} of output "${outSpec.name}" does not exist (it has ${k})`);
      if (k === 1) return t.data as Float32Array;
      const r = new Float64Array(n);
      for (let i = 0; i < n; i++) r[i] = Number((t.data as Float32Array)[i * k + c]);
      return r;
    };

    let method: Method;
    const want = o.method ?? 'auto';
    let attributions: Attribution[];
    let linear: LinearModel | undefined;
    if (want === 'exact' || (want === 'auto' && graph?.linear)) {
      if (!graph?.linear) throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, `method=exact needs a linear or logistic model, and ${graph ? graph.why : 'its graph could not be read'}: use method=kernel (KernelSHAP) or method=ig`);
      const key = `${outSpec.name}|${col ?? ''}|${link}|${bg.rows}`;
      let p = this.#linear.get(key);
      if (!p) this.#linear.set(key, (p = probeLinear(f, bg, link)));
      const lm = await p.catch((err: unknown) => {
        this.#linear.delete(key);
        throw err;
      });
      if ('notLinear' in lm) {
        if (want === 'exact') throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, `method=exact: ${lm.notLinear}`);
      } else linear = lm;
    }
    // Integrated gradients through the kernels' backward pass when the graph is Shoal's MLP (ml/governance/explain/gradients.ts).
    let mlp: ShoalMlp | undefined;
    if (want === 'ig' && !o.column) {
      let p = this.#mlp.get(outSpec.name);
      if (!p) this.#mlp.set(outSpec.name, (p = h.modelBytes().then((b) => (b ? shoalMlp(b, outSpec.name) : undefined)).then((r) => (r && !('notMlp' in r) ? r : undefined)).catch(() => undefined)));
      mlp = await p;
      if (mlp && mlp.layers[0]!.in !== D) mlp = undefined;
    }
    // Path steps: a backward step costs one row (finite differences 2·D), and exact gradients need more steps to meet efficiency at the ReLU kinks.
    const steps = o.steps ?? (mlp ? IG_BACKWARD_STEPS : 64);
    // Refuse before building the rows: what the one run would hold.
    const planned = linear ? rows : mlp ? igBackwardRows(rows, steps) : want === 'ig' ? 1 + rows * (1 + 2 * D * steps) : bg.rows + rows * (1 + Math.min(2 ** Math.min(D, 30) - 2, (o.samples ?? DEFAULT_SAMPLES) + 1) * bg.rows);
    if (planned > MAX_EXPLAIN_ROWS) throw MlErrors.EXPLAIN_UNSUPPORTED(h.label, `${planned} perturbed rows would exceed one run's ${MAX_EXPLAIN_ROWS}: send fewer rows, or lower samples/steps/background`);
    if (linear) {
      method = 'exact';
      attributions = linearShap(linear, bg, x, rows);
    } else if (mlp) {
      method = 'ig';
      try {
        const r = await integratedGradientsBackward(await explainKernels(), mlp, bg, x, rows, { link, steps });
        attributions = r.attributions;
        runRows += r.runRows;
      } catch (err) {
        if ((err as { code?: string }).code === 'SHOAL_ERR_KERNEL_NAN_INPUT') throw MlErrors.BAD_INPUT(`input "${inSpec.name}" holds NaN or Infinity`);
        throw MlErrors.INFERENCE_FAILED(h.label, `integrated gradients' backward pass: ${(err as Error).message}`);
      }
    } else if (want === 'ig') {
      method = 'ig';
      attributions = await integratedGradients(f, bg, x, rows, { link, steps });
    } else {
      method = 'kernel';
      const samples = o.samples ?? DEFAULT_SAMPLES;
      attributions = await kernelShap(f, bg, x, rows, { link, samples });
    }
    // The prediction as served: KernelSHAP and IG ran the rows in their one run; exact SHAP runs them now (its only run).
    const raw = method === 'exact' ? await f(x, rows) : attributions.map((a) => a.output ?? Number.NaN);

    // Feature-view models: one-hot columns summed into their raw feature (`view.feature=value` → `view.feature`).
    const grouped = !!h.columns && h.columns.length === D;
    const names: string[] = grouped ? h.columns! : columns;
    const group = (c: string) => {
      const i = c.indexOf('=');
      return i < 0 ? c : c.slice(0, i);
    };
    const explanations = attributions.map((a, r) => {
      const g = grouped ? groupAttributions(a, names, group) : { names, values: a.values };
      return {
        prediction: a.prediction,
        output: Number(raw[r]),
        base_value: a.base,
        attributions: Object.fromEntries(g.names.map((n, j) => [n, g.values[j]!])),
        ...(grouped ? { column_attributions: Object.fromEntries(names.map((n, j) => [n, a.values[j]!])) } : {}),
        efficiency_gap: a.gap,
      };
    });
    return {
      model_name: h.name,
      model_version: String(h.version),
      ...(d.id !== undefined ? { id: d.id } : {}),
      method,
      link,
      output: outSpec.name,
      features: grouped ? groupAttributions(attributions[0]!, names, group).names : names,
      background_rows: bg.rows,
      ...(method === 'kernel' ? { samples: o.samples ?? DEFAULT_SAMPLES } : {}),
      ...(method === 'ig' ? { steps, gradients: mlp ? 'backward' : 'finite-difference' } : {}),
      run_rows: runRows,
      ...(d.extra ?? {}),
      explanations,
    };
  }
}
