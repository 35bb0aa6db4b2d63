/* eslint-disable @next/next/no-img-element */
import ProbabilityBar from "./ProbabilityBar";
import VerdictBadge from "./VerdictBadge";
import type { FaceResult } from "@/lib/types";
import { explainVerdict, percent, stabilityText, verdictStyle } from "@/lib/verdict";

// Where the Grad-CAM overlay of a face stands: not asked for, being fetched, shown, or refused by the API.
export type EvidenceState = "none" | "loading" | "ready" | "failed";

/** One judged face: verdict, calibrated probability against the threshold and band, and its evidence. */
export default function FaceCard({
  face,
  index,
  threshold,
  band,
  wholeImage,
  showEvidence,
  evidenceState,
  evidenceError,
  onToggleEvidence,
}: {
  face: FaceResult;
  index: number;
  threshold: number;
  band: readonly [number, number];
  wholeImage: boolean;
  showEvidence: boolean;
  evidenceState: EvidenceState;
  evidenceError?: string;
  onToggleEvidence: () => void;
}) {
  const title = wholeImage ? "Whole image" : `Face ${index + 1}`;
  return (
    <article
      data-testid="face-card"
      aria-label={`${title}: ${verdictStyle(face.verdict).label}`}
      className="rounded-lg border border-ink-line bg-ink-sunken/60 p-4"
      style={{ borderLeft: `3px solid ${verdictStyle(face.verdict).colour}` }}
    >
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h4 className="text-sm font-semibold">{title}</h4>
        <VerdictBadge verdict={face.verdict} />
      </div>
      <p className="mt-3 flex items-baseline gap-2">
        <span className="tabular text-2xl font-semibold" style={{ color: verdictStyle(face.verdict).colour }}>
          {percent(face.fake_probability, 1)}
        </span>
        <span className="text-xs text-text-muted">fake probability (calibrated)</span>
      </p>
      <div className="mt-2">
        <ProbabilityBar
          probability={face.fake_probability}
          verdict={face.verdict}
          threshold={threshold}
          band={band}
          label={`${title} fake probability`}
        />
      </div>
      <p className="mt-1 text-xs text-text-muted">{explainVerdict(face.verdict, face.fake_probability, band)}</p>
      <dl className="tabular mt-2 grid grid-cols-2 gap-x-4 gap-y-1 text-xs">
        <dt className="text-text-muted">Confidence</dt>
        <dd>{percent(face.confidence, 1)}</dd>
        <dt className="text-text-muted">Threshold</dt>
        <dd>{percent(threshold, 1)}</dd>
        {face.stability && (
          <>
            <dt className="text-text-muted">Stability</dt>
            <dd data-testid="face-stability" data-stable={face.stability.stable}>
              {stabilityText(face.stability)}
            </dd>
          </>
        )}
        {face.box && (
          <>
            <dt className="text-text-muted">Detector score</dt>
            <dd>{percent(face.box.score, 0)}</dd>
          </>
        )}
      </dl>
      <div className="mt-3">
        <button
          type="button"
          aria-pressed={showEvidence}
          onClick={onToggleEvidence}
          className="inline-flex items-center gap-2 rounded-md border border-ink-line bg-ink-raised px-3 py-1.5 text-xs font-medium hover:border-accent"
        >
          <span
            aria-hidden="true"
            className={`inline-block h-3 w-6 rounded-full p-px transition-colors ${showEvidence ? "bg-accent" : "bg-ink-line"}`}
          >
            <span
              className={`block h-2.5 w-2.5 rounded-full bg-text transition-transform ${showEvidence ? "translate-x-3" : ""}`}
            />
          </span>
          {showEvidence ? "Hide evidence" : "Show evidence"}
        </button>
        {showEvidence && evidenceState === "loading" && (
          <p role="status" className="mt-2 text-xs text-text-muted">
            Computing the Grad-CAM evidence…
          </p>
        )}
        {showEvidence && evidenceState === "failed" && (
          <p role="alert" className="mt-2 text-xs text-verdict-synthetic">
            No evidence: {evidenceError}
          </p>
        )}
        {showEvidence && face.heatmap_png && (
          <figure className="mt-3">
            <img
              src={`data:image/png;base64,${face.heatmap_png}`}
              alt={`Grad-CAM heatmap of ${title.toLowerCase()}`}
              className="w-40 rounded ring-1 ring-ink-line"
            />
            <figcaption className="mt-1 max-w-xs text-[11px] text-text-muted">
              Grad-CAM: the brighter a region, the more it drove the model&apos;s answer for this face. It shows
              where the model looked, not proof of a forgery.
            </figcaption>
          </figure>
        )}
      </div>
    </article>
  );
}
