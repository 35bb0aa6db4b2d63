"use client";

import { useState } from "react";
import CasesPanel from "./CasesPanel";
import ImagePreview from "./ImagePreview";
import VerdictBadge from "./VerdictBadge";
import { download } from "@/lib/download";
import { entrySummary, evidenceText, toCsv, toJson, type HistoryEntry } from "@/lib/history";
import { percent } from "@/lib/verdict";

/** The images and videos analysed in this browser, newest first; stored locally, exportable, clearable. */
export default function HistoryView({
  entries,
  onClear,
  notice,
}: {
  entries: HistoryEntry[];
  onClear: () => void;
  notice: string | null;
}) {
  const [confirming, setConfirming] = useState(false);
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");

  return (
    <div className="space-y-4">
      <CasesPanel />
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h2 className="text-base font-semibold">History</h2>
          <p className="text-sm text-text-muted">
            {entries.length === 0
              ? "No analyses yet. They are kept in this browser only."
              : `${entries.length} analys${entries.length === 1 ? "is" : "es"} kept in this browser only (newest first).`}
          </p>
        </div>
        <div className="flex flex-wrap gap-2">
          <button
            type="button"
            disabled={entries.length === 0}
            onClick={() => download(`detecteur-history-${stamp}.json`, toJson(entries), "application/json")}
            className={buttonClass}
          >
            Export JSON
          </button>
          <button
            type="button"
            disabled={entries.length === 0}
            onClick={() => download(`detecteur-history-${stamp}.csv`, toCsv(entries), "text/csv")}
            className={buttonClass}
          >
            Export CSV
          </button>
          {confirming ? (
            <>
              <button
                type="button"
                autoFocus
                onClick={() => {
                  onClear();
                  setConfirming(false);
                }}
                className={`${buttonClass} border-verdict-synthetic text-verdict-synthetic`}
              >
                Yes, clear {entries.length}
              </button>
              <button type="button" onClick={() => setConfirming(false)} className={buttonClass}>
                Cancel
              </button>
            </>
          ) : (
            <button type="button" disabled={entries.length === 0} onClick={() => setConfirming(true)} className={buttonClass}>
              Clear history
            </button>
          )}
        </div>
      </div>
      {notice && (
        <p role="status" className="rounded-md border border-verdict-borderline/50 bg-verdict-borderline/10 p-2 text-sm">
          {notice}
        </p>
      )}
      {entries.length > 0 && (
        <ul className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3 xl:grid-cols-4" aria-label="Past analyses">
          {entries.map((entry) => (
            <li key={entry.id} data-testid="history-entry" data-media={entry.media} className="flex flex-col rounded-lg border border-ink-line bg-ink-raised p-3">
              {entry.thumbnail ? (
                <ImagePreview
                  src={entry.thumbnail}
                  alt={`Thumbnail of ${entry.filename}`}
                  width={entry.width}
                  height={entry.height}
                  faces={entry.faces}
                  compact
                />
              ) : (
                <div className="flex aspect-video items-center justify-center rounded-md bg-ink-sunken text-xs text-text-muted">
                  no thumbnail
                </div>
              )}
              <div className="mt-3 flex items-start justify-between gap-2">
                <p className="min-w-0 truncate font-mono text-xs" title={entry.filename}>
                  {entry.filename}
                </p>
                <VerdictBadge verdict={entry.verdict} size="sm" />
              </div>
              <p className="tabular mt-1 text-xs text-text-muted">
                {percent(entry.fake_probability, 1)} fake ·{" "}
                {entrySummary(entry)} ·
                model {entry.model_version}
              </p>
              {entry.evidence && (
                <p data-testid="history-evidence" className="mt-1 text-xs text-text-muted" title={entry.evidence.summary}>
                  {evidenceText(entry.evidence)}
                </p>
              )}
              <p className="tabular mt-auto pt-1 text-xs text-text-faint">
                <time dateTime={entry.analysed_at}>{new Date(entry.analysed_at).toLocaleString()}</time>
              </p>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

const buttonClass =
  "rounded-md border border-ink-line bg-ink-raised px-3 py-1.5 text-sm font-medium hover:border-accent disabled:cursor-not-allowed disabled:opacity-50";
