/** Reading the running model's measured figures (GET /v1/model `metrics`) for the Model view. Everything shown
 * comes from the model file; nothing here is typed in. */

import type { TrainingStage } from "./types";

export interface SplitMetrics {
  n: number;
  accuracy: number | null;
  precision: number | null;
  recall: number | null;
  roc_auc: number | null;
  false_positive_rate: number | null;
  ece: number | null;
}

export interface SourceRow extends SplitMetrics {
  source: string;
}

function asNumber(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function asSplit(value: unknown): SplitMetrics | null {
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  const n = asNumber(record.n);
  if (n === null) return null;
  return {
    n,
    accuracy: asNumber(record.accuracy),
    precision: asNumber(record.precision),
    recall: asNumber(record.recall),
    roc_auc: asNumber(record.roc_auc),
    false_positive_rate: asNumber(record.false_positive_rate),
    ece: asNumber(record.ece),
  };
}

export function splitMetrics(metrics: Record<string, unknown>, split: "test" | "validation"): SplitMetrics | null {
  return asSplit(metrics[split]);
}

/** Per-source rows of the test split, weakest accuracy first: the first row is where to trust the model least. */
export function sourceRows(metrics: Record<string, unknown>): SourceRow[] {
  const perSource = metrics.per_source;
  if (typeof perSource !== "object" || perSource === null) return [];
  return Object.entries(perSource as Record<string, unknown>)
    .flatMap(([source, value]) => {
      const split = asSplit(value);
      return split ? [{ source, ...split }] : [];
    })
    .sort((a, b) => (a.accuracy ?? 1) - (b.accuracy ?? 1) || a.source.localeCompare(b.source));
}

/** One line on how the weights were trained, from the model's training stages: "15 epochs, 3.4 h on cpu (2 runs)".
 * Null when the model file records no stages. */
export function trainingSummary(stages: TrainingStage[] | undefined): string | null {
  if (!stages || stages.length === 0) return null;
  const epochs = stages.reduce((sum, stage) => sum + stage.epochs, 0);
  const minutes = stages.reduce((sum, stage) => sum + stage.training_minutes, 0);
  const duration = minutes >= 90 ? `${(minutes / 60).toFixed(1)} h` : `${Math.round(minutes)} min`;
  const devices = Array.from(new Set(stages.map((stage) => stage.device))).join(" + ");
  const runs = stages.length === 1 ? "" : ` (${stages.length} runs)`;
  return `${epochs} epoch${epochs === 1 ? "" : "s"}, ${duration} on ${devices}${runs}`;
}

/** `train` counts per "source/class" from the data summary, as rows of source × authentic/synthetic images. */
export function trainingSources(dataSummary: Record<string, unknown>): { source: string; real: number; fake: number }[] {
  const train = dataSummary.train;
  if (typeof train !== "object" || train === null) return [];
  const rows = new Map<string, { source: string; real: number; fake: number }>();
  for (const [key, count] of Object.entries(train as Record<string, unknown>)) {
    const [source, label] = key.split("/");
    if (typeof count !== "number" || (label !== "real" && label !== "fake")) continue;
    const row = rows.get(source) ?? { source, real: 0, fake: 0 };
    row[label] += count;
    rows.set(source, row);
  }
  return [...rows.values()].sort((a, b) => a.source.localeCompare(b.source));
}

/** Figures in reading order: how well it ranks, how honest its probabilities are, then the details. */
const FIGURE_CAPTIONS: Record<string, string> = {
  roc: "ROC curve on the held-out test split",
  precision_recall: "Precision–recall curve on the test split",
  reliability: "Reliability: predicted probability against observed frequency, before and after calibration",
  confusion_matrix: "Confusion matrix at the model's threshold (test split)",
  training_curves: "Training curves: loss and validation AUC per epoch (and per source, where the run logged it)",
  hardest_errors: "The test images the model got most confidently wrong",
};

// An ensemble's card has one training-curves figure per member run: `training_curves_<run>.png`.
const MEMBER_CURVES_PREFIX = "training_curves_";

/** A caption for a figure URL like `/v1/model/figures/roc.png`. */
export function figureCaption(url: string): string {
  const name = figureName(url);
  if (name.startsWith(MEMBER_CURVES_PREFIX)) {
    return `Training curves of ensemble member ${name.slice(MEMBER_CURVES_PREFIX.length)}: loss and validation AUC per epoch`;
  }
  return FIGURE_CAPTIONS[name] ?? name.replace(/[_-]+/g, " ");
}

/** The figure's kind for ordering and sizing: a member's training curves are training curves. */
function figureKind(url: string): string {
  const name = figureName(url);
  return name.startsWith(MEMBER_CURVES_PREFIX) ? "training_curves" : name;
}

/** "efficientnet_lite0", or for an ensemble "ensemble of efficientnet_lite0 + efficientnet_lite2". */
export function architectureLabel(arch: string, members: readonly string[] | undefined): string {
  return members && members.length > 0 ? `${arch} of ${members.join(" + ")}` : arch;
}

const FRAMING_LABELS: Record<string, string> = {
  whole_image: "whole image",
  face_crop: "each detected face",
  native_face_crop: "each detected face, at its own scale",
};

/** What the model reads, in words; a framing this dashboard does not know is shown by its name. */
export function framingLabel(framing: string): string {
  return FRAMING_LABELS[framing] ?? framing;
}

function figureName(url: string): string {
  return (url.split("/").pop() ?? url).replace(/\.png$/i, "");
}

/** Known figures first in reading order, then any others by name. */
export function orderFigures(urls: readonly string[]): string[] {
  const known = Object.keys(FIGURE_CAPTIONS);
  const rank = (url: string) => {
    const index = known.indexOf(figureKind(url));
    return index === -1 ? known.length : index;
  };
  return [...urls].sort((a, b) => rank(a) - rank(b) || figureName(a).localeCompare(figureName(b)));
}

/** How many grid columns (of at most 3) a figure spans: multi-panel figures read better wider. */
export function figureColumns(url: string): 1 | 2 | 3 {
  const kind = figureKind(url);
  if (kind === "hardest_errors") return 3;
  if (kind === "training_curves") return 2;
  return 1;
}
