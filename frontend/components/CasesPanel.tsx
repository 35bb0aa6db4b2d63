"use client";

import { useCallback, useEffect, useState } from "react";
import VerdictBadge from "./VerdictBadge";
import {
  DECISION_LABELS,
  DECISIONS,
  exportUrl,
  fetchCases,
  reviewCase,
  type CaseFilters,
  type CaseSummary,
  type Decision,
} from "@/lib/cases";
import { explainError } from "@/lib/api";
import { percent } from "@/lib/verdict";

/** The server's record of every check (when its cases store is on): search, filters, the reviewer's decision and
 * note, a "disagreements" view (reviewed cases the model got wrong: the next training round) and exports. Hidden
 * when the server keeps no cases. */
export default function CasesPanel() {
  const [filters, setFilters] = useState<CaseFilters>({});
  const [cases, setCases] = useState<CaseSummary[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<"loading" | "ready" | "off" | "failed">("loading");
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async (wanted: CaseFilters, after: string | null) => {
    try {
      const page = await fetchCases(wanted, after);
      if (page === null) return setState("off");
      setCases((current) => (after ? [...current, ...page.cases] : page.cases));
      setCursor(page.next_cursor);
      setState("ready");
      setError(null);
    } catch (failure) {
      setState("failed");
      setError(explainError(failure).detail);
    }
  }, []);

  useEffect(() => {
    void load(filters, null);
  }, [filters, load]);

  if (state === "off") return null;
  const set = (change: Partial<CaseFilters>) => setFilters((current) => ({ ...current, ...change }));

  const review = async (item: CaseSummary, change: { decision?: Decision | null; note?: string | null }) => {
    try {
      const updated = await reviewCase(item.id, change);
      setCases((current) => current.map((other) => (other.id === item.id ? { ...other, ...updated } : other)));
    } catch (failure) {
      setError(explainError(failure).detail);
    }
  };

  return (
    <section aria-labelledby="cases-title" data-testid="cases" className="space-y-3 rounded-lg border border-ink-line bg-ink-raised p-4">
      <div className="flex flex-wrap items-center justify-between gap-3">
        <div>
          <h2 id="cases-title" className="text-base font-semibold">
            Cases on the server
          </h2>
          <p className="text-sm text-text-muted">Every check the API judged, for everyone on this server, newest first.</p>
        </div>
        <div className="flex flex-wrap gap-2">
          <a className={buttonClass} href={exportUrl(filters, "csv")} download>
            Export CSV
          </a>
          <a className={buttonClass} href={exportUrl(filters, "jsonl")} download>
            Export JSONL
          </a>
          <a
            className={buttonClass}
            href={exportUrl(filters, "zip")}
            download
            title="The stored images of the reviewed cases in real/ and fake/ by the reviewer's label: `detecteur data manifest` reads it"
          >
            Export labelled folder
          </a>
        </div>
      </div>

      <div className="flex flex-wrap items-end gap-2 text-sm" role="search">
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">View</span>
          <select
            aria-label="View"
            className={inputClass}
            value={filters.disagreements ? "disagreements" : "all"}
            onChange={(event) => set({ disagreements: event.target.value === "disagreements" })}
          >
            <option value="all">All cases</option>
            <option value="disagreements">Disagreements (reviewer ≠ model)</option>
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">Verdict</span>
          <select aria-label="Verdict" className={inputClass} value={filters.verdict ?? ""} onChange={(event) => set({ verdict: event.target.value as CaseFilters["verdict"] })}>
            <option value="">any</option>
            <option value="authentic">authentic</option>
            <option value="borderline">borderline</option>
            <option value="synthetic">synthetic</option>
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">Decision</span>
          <select aria-label="Decision" className={inputClass} value={filters.decision ?? ""} onChange={(event) => set({ decision: event.target.value as CaseFilters["decision"] })}>
            <option value="">any</option>
            <option value="none">not reviewed</option>
            <option value="any">reviewed</option>
            {DECISIONS.map((decision) => (
              <option key={decision} value={decision}>
                {DECISION_LABELS[decision]}
              </option>
            ))}
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">Model version</span>
          <input aria-label="Model version" className={inputClass} defaultValue="" onBlur={(event) => set({ model_version: event.target.value })} />
        </label>
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">From</span>
          <input aria-label="From" type="date" className={inputClass} onChange={(event) => set({ since: event.target.value })} />
        </label>
        <label className="flex flex-col gap-1">
          <span className="text-xs text-text-muted">To</span>
          <input aria-label="To" type="date" className={inputClass} onChange={(event) => set({ until: event.target.value })} />
        </label>
        <label className="flex grow flex-col gap-1">
          <span className="text-xs text-text-muted">sha256</span>
          <input aria-label="Search by sha256" placeholder="the file's sha256" className={`${inputClass} font-mono`} onBlur={(event) => set({ sha256: event.target.value })} />
        </label>
      </div>

      {error && (
        <p role="alert" className="text-sm text-verdict-synthetic">
          {error}
        </p>
      )}
      {state === "ready" && cases.length === 0 && <p className="text-sm text-text-muted">No case matches.</p>}
      {cases.length > 0 && (
        <div className="overflow-x-auto">
          <table className="w-full text-left text-sm">
            <thead className="text-xs text-text-muted">
              <tr>
                <th className="p-1">When</th>
                <th className="p-1">File</th>
                <th className="p-1">Model</th>
                <th className="p-1">Verdict</th>
                <th className="p-1">Decision</th>
                <th className="p-1">Note</th>
              </tr>
            </thead>
            <tbody>
              {cases.map((item) => (
                <tr key={item.id} data-testid="case-row" data-disagreement={item.disagreement} className="border-t border-ink-line align-top">
                  <td className="tabular p-1 text-xs text-text-muted">
                    <time dateTime={item.created_at}>{new Date(item.created_at).toLocaleString()}</time>
                    {item.api_key_name && <div>by {item.api_key_name}</div>}
                  </td>
                  <td className="max-w-48 p-1">
                    <div className="truncate font-mono text-xs" title={item.filename ?? item.sha256}>
                      {item.filename ?? "(no name)"}
                    </div>
                    <div className="truncate font-mono text-[10px] text-text-faint" title={item.sha256}>
                      {item.sha256.slice(0, 16)}… · {item.kind}
                    </div>
                    {item.previous_case_id !== null && (
                      <button type="button" className="text-[11px] text-accent underline" onClick={() => set({ sha256: item.sha256 })}>
                        seen before: every check of these bytes
                      </button>
                    )}
                  </td>
                  <td className="p-1 font-mono text-xs">{item.model_version}</td>
                  <td className="p-1">
                    <VerdictBadge verdict={item.verdict} size="sm" />
                    <div className="tabular text-xs text-text-muted">{percent(item.fake_probability, 1)} fake</div>
                  </td>
                  <td className="p-1">
                    <select
                      aria-label={`Decision for case ${item.id}`}
                      className={inputClass}
                      value={item.decision ?? ""}
                      onChange={(event) => void review(item, { decision: (event.target.value || null) as Decision | null })}
                    >
                      <option value="">not reviewed</option>
                      {DECISIONS.map((decision) => (
                        <option key={decision} value={decision}>
                          {DECISION_LABELS[decision]}
                        </option>
                      ))}
                    </select>
                    {item.disagreement && <div className="text-xs text-verdict-borderline">disagrees with the model</div>}
                  </td>
                  <td className="p-1">
                    <input
                      aria-label={`Note for case ${item.id}`}
                      className={`${inputClass} w-full`}
                      defaultValue={item.note ?? ""}
                      onBlur={(event) => {
                        if (event.target.value !== (item.note ?? "")) void review(item, { note: event.target.value || null });
                      }}
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {cursor && (
        <button type="button" className={buttonClass} onClick={() => void load(filters, cursor)}>
          Older cases
        </button>
      )}
    </section>
  );
}

const buttonClass =
  "rounded-md border border-ink-line bg-ink-raised px-3 py-1.5 text-sm font-medium hover:border-accent disabled:cursor-not-allowed disabled:opacity-50";
const inputClass = "rounded-md border border-ink-line bg-ink-sunken px-2 py-1 text-sm";
