"use client";

/* eslint-disable @next/next/no-img-element */
import { useEffect, useState } from "react";
import { apiUrl, explainError, fetchModel, type ErrorExplanation } from "@/lib/api";
import {
  architectureLabel,
  framingLabel,
  figureCaption,
  figureColumns,
  orderFigures,
  sourceRows,
  splitMetrics,
  trainingSources,
  trainingSummary,
  type SplitMetrics,
} from "@/lib/modelSummary";
import type { ModelInfo } from "@/lib/types";
import { percent } from "@/lib/verdict";

/** What model is running, what it was measured to do, and where not to trust it. */
export default function ModelView() {
  const [model, setModel] = useState<ModelInfo | null>(null);
  const [error, setError] = useState<ErrorExplanation | null>(null);

  useEffect(() => {
    fetchModel().then(setModel, (failure: unknown) => setError(explainError(failure)));
  }, []);

  if (error)
    return (
      <div role="alert" className="rounded-md border border-verdict-synthetic/60 bg-verdict-synthetic/10 p-4 text-sm">
        <p className="font-semibold text-verdict-synthetic">{error.title}</p>
        <p className="mt-1">{error.detail}</p>
      </div>
    );
  if (!model) return <p className="text-sm text-text-muted">Loading the model card…</p>;

  const test = splitMetrics(model.metrics, "test");
  const sources = sourceRows(model.metrics);
  const weakest = sources.find((row) => row.accuracy !== null);
  const training = trainingSources(model.data_summary);
  const trainedFor = trainingSummary(model.training_stages);

  return (
    <div className="space-y-6" data-testid="model-view">
      <section className="rounded-xl border border-ink-line bg-ink-raised p-5">
        <p className="text-xs uppercase tracking-wider text-text-muted">Running model</p>
        <h2 className="mt-1 font-mono text-xl font-semibold">
          {architectureLabel(model.arch, model.members)} <span className="text-accent">v{model.version}</span>
        </h2>
        <dl className="tabular mt-4 grid grid-cols-2 gap-x-6 gap-y-2 text-sm sm:grid-cols-4">
          <Fact term="Input">
            {model.in_chans === 4 ? "RGB + Laplacian" : `${model.in_chans} channels`}, {model.input_size} px
          </Fact>
          <Fact term="Framing">{framingLabel(model.framing)}</Fact>
          <Fact term="Threshold">{percent(model.threshold, 1)}</Fact>
          <Fact term="Borderline band">
            {percent(model.borderline_band[0])}–{percent(model.borderline_band[1])}
          </Fact>
          <Fact term="Calibration">temperature {model.temperature.toFixed(3)}</Fact>
          <Fact term="Built">{model.created_at.slice(0, 10)}</Fact>
          <Fact term="Commit">{model.git_commit ? model.git_commit.slice(0, 10) : "unknown"}</Fact>
          <Fact term="Labels">{model.labels.join(" / ")}</Fact>
          {trainedFor && <Fact term="Training">{trainedFor}</Fact>}
        </dl>
      </section>

      {test && (
        <section aria-labelledby="test-heading">
          <h2 id="test-heading" className="mb-3 text-sm font-semibold uppercase tracking-wider text-text-muted">
            Measured on {test.n} held-out test images
          </h2>
          <MetricTiles metrics={test} />
        </section>
      )}

      <section aria-labelledby="limits-heading" className="rounded-xl border border-verdict-borderline/40 bg-verdict-borderline/5 p-5">
        <h2 id="limits-heading" className="text-sm font-semibold uppercase tracking-wider text-verdict-borderline">
          Limitations, in plain words
        </h2>
        <ul className="mt-3 list-disc space-y-2 pl-5 text-sm leading-relaxed">
          <li>
            It is a second opinion for a person who looks at the evidence — not a decision about anyone. A high fake
            probability is a reason to look closer, not proof.
          </li>
          {weakest && weakest.accuracy !== null && (
            <li>
              It is much weaker on some sources than the headline says: on <span className="font-mono">{weakest.source}</span> test
              images it was right only {percent(weakest.accuracy, 1)} of the time (table below).
            </li>
          )}
          <li>
            It only knows the kinds of fakes it was trained on (listed below). Other kinds — hand-made photo edits,
            newer generators, face swaps from other tools — are often missed.
          </li>
          <li>
            It looks for faces that are large in the frame. Small faces in a big photo may be missed; the whole
            image is then judged, which is less reliable.
          </li>
          <li>
            Heavy compression, resizing and blur remove the traces it relies on, so screenshots and re-shared copies
            are harder to judge.
          </li>
          <li>It judges still images. Video deepfakes are a different task.</li>
          <li>
            The training images come with mostly non-commercial terms; the model inherits that restriction. Full
            details: <span className="font-mono">models/MODEL_CARD.md</span>.
          </li>
        </ul>
      </section>

      {sources.length > 0 && (
        <section aria-labelledby="sources-heading" className="overflow-x-auto">
          <h2 id="sources-heading" className="mb-3 text-sm font-semibold uppercase tracking-wider text-text-muted">
            Per source (test split), weakest first
          </h2>
          <table className="tabular w-full min-w-[36rem] border-collapse text-sm">
            <thead>
              <tr className="border-b border-ink-line text-left text-xs text-text-muted">
                <th scope="col" className="py-2 pr-4 font-medium">Source</th>
                <th scope="col" className="py-2 pr-4 text-right font-medium">Images</th>
                <th scope="col" className="py-2 pr-4 text-right font-medium">Accuracy</th>
                <th scope="col" className="py-2 pr-4 text-right font-medium">Recall (fakes caught)</th>
                <th scope="col" className="py-2 pr-4 text-right font-medium">False alarms on real</th>
                <th scope="col" className="py-2 text-right font-medium">ROC AUC</th>
              </tr>
            </thead>
            <tbody>
              {sources.map((row) => (
                <tr key={row.source} className="border-b border-ink-line/60">
                  <th scope="row" className="py-2 pr-4 text-left font-mono font-normal">{row.source}</th>
                  <td className="py-2 pr-4 text-right">{row.n}</td>
                  <td className="py-2 pr-4 text-right">{fmt(row.accuracy)}</td>
                  <td className="py-2 pr-4 text-right">{fmt(row.recall)}</td>
                  <td className="py-2 pr-4 text-right">{fmt(row.false_positive_rate)}</td>
                  <td className="py-2 text-right">{row.roc_auc === null ? "n/a" : row.roc_auc.toFixed(3)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="mt-2 text-xs text-text-muted">n/a: a source with only real or only synthetic images has no ROC curve or false-alarm rate.</p>
        </section>
      )}

      {training.length > 0 && (
        <section aria-labelledby="training-heading">
          <h2 id="training-heading" className="mb-3 text-sm font-semibold uppercase tracking-wider text-text-muted">
            Training data (face crops)
          </h2>
          <ul className="tabular flex flex-wrap gap-2 text-sm">
            {training.map((row) => (
              <li key={row.source} className="rounded-md border border-ink-line bg-ink-raised px-3 py-1.5">
                <span className="font-mono">{row.source}</span>
                <span className="ml-2 text-text-muted">
                  {row.real > 0 && `${row.real} real`}
                  {row.real > 0 && row.fake > 0 && " · "}
                  {row.fake > 0 && `${row.fake} synthetic`}
                </span>
              </li>
            ))}
          </ul>
        </section>
      )}

      {model.figures.length > 0 && (
        <section aria-labelledby="figures-heading">
          <h2 id="figures-heading" className="mb-3 text-sm font-semibold uppercase tracking-wider text-text-muted">
            Figures
          </h2>
          <div className="grid items-start gap-4 sm:grid-cols-2 xl:grid-cols-3">
            {orderFigures(model.figures).map((figure) => (
              <figure
                key={figure}
                className={`rounded-lg border border-ink-line bg-ink-raised p-3 ${SPANS[figureColumns(figure)]}`}
              >
                <a href={apiUrl(figure)} target="_blank" rel="noreferrer" aria-label={`Open full size: ${figureCaption(figure)}`}>
                  <img src={apiUrl(figure)} alt={figureCaption(figure)} loading="lazy" className="w-full rounded bg-white" />
                </a>
                <figcaption className="mt-2 text-xs text-text-muted">{figureCaption(figure)}</figcaption>
              </figure>
            ))}
          </div>
        </section>
      )}
    </div>
  );
}

const SPANS = { 1: "", 2: "sm:col-span-2", 3: "sm:col-span-2 xl:col-span-3" } as const;

function Fact({ term, children }: { term: string; children: React.ReactNode }) {
  return (
    <div>
      <dt className="text-xs text-text-muted">{term}</dt>
      <dd className="mt-0.5">{children}</dd>
    </div>
  );
}

function fmt(value: number | null): string {
  return value === null ? "n/a" : percent(value, 1);
}

function MetricTiles({ metrics }: { metrics: SplitMetrics }) {
  const tiles: [string, string, string][] = [
    ["ROC AUC", metrics.roc_auc === null ? "n/a" : metrics.roc_auc.toFixed(3), "ranking of fakes above reals (1 = perfect)"],
    ["Accuracy", fmt(metrics.accuracy), "verdicts right at the threshold"],
    ["Precision", fmt(metrics.precision), "of faces called synthetic, truly synthetic"],
    ["Recall", fmt(metrics.recall), "of synthetic faces, caught"],
    ["False alarms", fmt(metrics.false_positive_rate), "of real faces, called synthetic"],
    ["Calibration error", metrics.ece === null ? "n/a" : metrics.ece.toFixed(3), "ECE: gap between stated and true probability"],
  ];
  return (
    <dl className="grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-6">
      {tiles.map(([term, value, help]) => (
        <div key={term} className="rounded-lg border border-ink-line bg-ink-raised p-3">
          <dt className="text-xs text-text-muted">{term}</dt>
          <dd className="tabular mt-1 text-xl font-semibold">{value}</dd>
          <dd className="mt-1 text-[11px] leading-snug text-text-muted">{help}</dd>
        </div>
      ))}
    </dl>
  );
}
