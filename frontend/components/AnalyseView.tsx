"use client";

import { useCallback, useEffect, useRef, useState } from "react";
import { ErrorAlert, Working } from "./AnalysisStatus";
import DropZone from "./DropZone";
import FaceCard, { type EvidenceState } from "./FaceCard";
import ImagePreview from "./ImagePreview";
import VerdictBadge from "./VerdictBadge";
import { explainError, predictImage, type ErrorExplanation } from "@/lib/api";
import { seenBeforeText } from "@/lib/cases";
import { entryFrom, type HistoryEntry } from "@/lib/history";
import { makeThumbnail } from "@/lib/thumbnail";
import type { Evidence, EvidenceLine, ImageResult, PredictResponse } from "@/lib/types";
import { percent } from "@/lib/verdict";

interface Analysis {
  id: number;
  file: File;
  filename: string;
  previewUrl: string;
  state: "running" | "done" | "failed";
  response?: PredictResponse;
  result?: ImageResult;
  error?: ErrorExplanation;
  /** Which faces show their evidence. */
  evidence: boolean[];
  /** Heatmaps are asked for only when first shown: the verdict comes back without the Grad-CAM pass's cost. */
  evidenceState: EvidenceState;
  evidenceError?: string;
}

let nextId = 1;

/** Drop, pick or paste images; each is sent on its own request and judged face by face. */
export default function AnalyseView({ onAnalysed }: { onAnalysed: (entries: HistoryEntry[]) => void }) {
  const [analyses, setAnalyses] = useState<Analysis[]>([]);
  const urls = useRef<string[]>([]);

  useEffect(() => () => urls.current.forEach((url) => URL.revokeObjectURL(url)), []);

  const update = (id: number, change: Partial<Analysis>) =>
    setAnalyses((current) => current.map((analysis) => (analysis.id === id ? { ...analysis, ...change } : analysis)));

  const analyse = useCallback(
    async (files: File[]) => {
      const started = files.map((file) => {
        const previewUrl = URL.createObjectURL(file);
        urls.current.push(previewUrl);
        const analysis: Analysis = {
          id: nextId++,
          file,
          filename: file.name || "pasted image",
          previewUrl,
          state: "running",
          evidence: [],
          evidenceState: "none",
        };
        return { file, analysis };
      });
      setAnalyses((current) => [...started.map((item) => item.analysis), ...current]);
      // One at a time: the server judges with a small thread pool, and results appear in the order dropped.
      for (const { file, analysis } of started) {
        try {
          const response = await predictImage(file, analysis.filename, false);
          const result = response.results[0];
          update(analysis.id, { state: "done", response, result, evidence: result.faces.map(() => false) });
          onAnalysed([entryFrom(response, { ...result, filename: analysis.filename }, await makeThumbnail(file))]);
        } catch (error) {
          update(analysis.id, { state: "failed", error: explainError(error) });
        }
      }
    },
    [onAnalysed],
  );

  const toggleEvidence = async (analysis: Analysis, face: number) => {
    const evidence = analysis.evidence.map((shown, index) => (index === face ? !shown : shown));
    const fetchNow = evidence[face] && (analysis.evidenceState === "none" || analysis.evidenceState === "failed");
    update(analysis.id, fetchNow ? { evidence, evidenceState: "loading", evidenceError: undefined } : { evidence });
    if (!fetchNow || !analysis.result) return;
    try {
      const explained = (await predictImage(analysis.file, analysis.filename, true)).results[0];
      // The same image gives the same faces in the same order; check rather than assume.
      if (explained.faces.length !== analysis.result.faces.length) throw new Error("the faces found changed");
      const faces = analysis.result.faces.map((judged, index) => ({ ...judged, heatmap_png: explained.faces[index].heatmap_png }));
      update(analysis.id, { evidenceState: "ready", result: { ...analysis.result, faces } });
    } catch (error) {
      update(analysis.id, { evidenceState: "failed", evidenceError: explainError(error).detail });
    }
  };

  return (
    <div className="space-y-6">
      <DropZone onFiles={analyse} />
      <div aria-live="polite" className="sr-only">
        {analyses.filter((analysis) => analysis.state === "running").length > 0 ? "Analysing…" : ""}
      </div>
      {analyses.length === 0 ? (
        <p className="text-sm text-text-muted">
          Results appear here: a box on every face the detector finds, a verdict per face, and on request the regions
          that drove the model&apos;s answer.
        </p>
      ) : (
        <ol className="space-y-6" aria-label="Analyses">
          {analyses.map((analysis) => (
            <li key={analysis.id}>
              <AnalysisCard analysis={analysis} onToggleEvidence={(face) => void toggleEvidence(analysis, face)} />
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function AnalysisCard({ analysis, onToggleEvidence }: { analysis: Analysis; onToggleEvidence: (face: number) => void }) {
  const { response, result } = analysis;
  return (
    <article
      data-testid="analysis"
      data-state={analysis.state}
      aria-busy={analysis.state === "running"}
      className="rounded-xl border border-ink-line bg-ink-raised p-4 shadow-lg shadow-black/20 sm:p-5"
    >
      <header className="mb-4 flex flex-wrap items-center justify-between gap-3">
        <div className="min-w-0">
          <h3 className="truncate font-mono text-sm text-text" title={analysis.filename}>
            {analysis.filename}
          </h3>
          {result && (
            <p className="tabular text-xs text-text-muted">
              {result.width}×{result.height}px · {result.face_detected ? `${result.faces.length} face${result.faces.length > 1 ? "s" : ""}` : "no face found"}{" "}
              · model {response?.model_version}
            </p>
          )}
          {result?.case?.seen_before && (
            <p data-testid="seen-before" className="text-xs text-verdict-borderline">
              {seenBeforeText(result.case.seen_before)} (case {result.case.seen_before.case_id})
            </p>
          )}
        </div>
        {analysis.state === "running" && <Working label="Analysing…" />}
        {result && (
          <div className="flex items-center gap-3">
            <span className="text-xs text-text-muted">Image verdict</span>
            <VerdictBadge verdict={result.verdict} size="lg" />
          </div>
        )}
      </header>

      {analysis.state === "failed" && analysis.error && <ErrorAlert error={analysis.error} testId="analysis-error" />}

      {(analysis.state === "running" || result) && (
        <div className="grid gap-5 lg:grid-cols-[minmax(0,3fr)_minmax(0,2fr)]">
          <div>
            {result ? (
              <ImagePreview
                src={analysis.previewUrl}
                alt={`Preview of ${analysis.filename}`}
                width={result.width}
                height={result.height}
                faces={result.faces}
                evidence={analysis.evidence}
              />
            ) : (
              // eslint-disable-next-line @next/next/no-img-element
              <img src={analysis.previewUrl} alt={`Preview of ${analysis.filename}`} className="max-h-96 rounded-md opacity-60" />
            )}
            {result && <TimingLine result={result} />}
          </div>
          {result && response && (
            <div className="space-y-3">
              {!result.face_detected && (
                <p role="note" data-testid="no-face" className="rounded-md border border-verdict-borderline/50 bg-verdict-borderline/10 p-3 text-sm">
                  <span className="font-semibold text-verdict-borderline">No face found — judged the whole image.</span>{" "}
                  The detector finds faces that are large in the frame; the model was trained on face crops, so this
                  verdict is less reliable.
                </p>
              )}
              {result.evidence && <EvidencePanel evidence={result.evidence} />}
              {result.faces.map((face, index) => (
                <FaceCard
                  key={index}
                  face={face}
                  index={index}
                  threshold={response.threshold}
                  band={response.borderline_band}
                  wholeImage={!result.face_detected}
                  showEvidence={analysis.evidence[index] ?? false}
                  evidenceState={analysis.evidenceState}
                  evidenceError={analysis.evidenceError}
                  onToggleEvidence={() => onToggleEvidence(index)}
                />
              ))}
            </div>
          )}
        </div>
      )}
    </article>
  );
}

const SOURCE_NAMES: Record<EvidenceLine["source"], string> = {
  pixel_model: "Pixel model",
  content_credentials: "Content Credentials (C2PA)",
  metadata: "File metadata",
};

/** The evidence lines side by side, under a summary that claims no more than the strongest line (the API's own
 * wording: the dashboard never strengthens it). */
function EvidencePanel({ evidence }: { evidence: Evidence }) {
  return (
    <section data-testid="evidence" aria-label="Evidence" className="rounded-md border border-white/10 p-3 text-sm">
      <p data-testid="evidence-summary">
        <span className="font-semibold">Summary ({evidence.strength} evidence):</span> {evidence.summary}
      </p>
      <ul className="mt-2 grid gap-2 sm:grid-cols-3">
        {evidence.lines.map((line) => (
          <li key={line.source} data-testid={`evidence-${line.source}`} className="rounded border border-white/10 p-2 text-xs">
            <p className="font-semibold">{SOURCE_NAMES[line.source]}</p>
            <p className="text-text-muted">{line.strength === "none" ? "says nothing" : `${line.strength}, points to ${line.points_to}`}</p>
            <p className="mt-1">{line.statement}</p>
          </li>
        ))}
      </ul>
    </section>
  );
}

function TimingLine({ result }: { result: ImageResult }) {
  const { decode_ms, faces_ms, model_ms, total_ms } = result.timings;
  const ms = (value: number) => `${value.toFixed(0)} ms`;
  return (
    <p data-testid="timings" className="tabular mt-2 text-xs text-text-muted">
      Server time {ms(total_ms)} — decode {ms(decode_ms)}, face detection {ms(faces_ms)}, model {ms(model_ms)} · most suspicious face {percent(result.fake_probability, 1)}
    </p>
  );
}
