/** The server's cases store (`/v1/cases`): every check the API judged, with the reviewers' decisions. */

import { ApiError, apiUrl } from "./api";
import type { Verdict } from "./types";

export type Decision = "confirmed_synthetic" | "confirmed_authentic" | "unsure";
export const DECISIONS: readonly Decision[] = ["confirmed_synthetic", "confirmed_authentic", "unsure"];
export const DECISION_LABELS: Record<Decision, string> = {
  confirmed_synthetic: "Confirmed synthetic",
  confirmed_authentic: "Confirmed authentic",
  unsure: "Unsure",
};

export interface CaseSummary {
  id: number;
  created_at: string;
  kind: "image" | "video";
  sha256: string;
  size_bytes: number;
  media_type: string;
  filename: string | null;
  verdict: Verdict;
  fake_probability: number;
  model_version: string;
  api_key_name: string | null;
  previous_case_id: number | null;
  decision: Decision | null;
  note: string | null;
  decided_at: string | null;
  decided_by: string | null;
  has_image: boolean;
  has_thumbnail: boolean;
  disagreement: boolean;
}

export interface CasePage {
  cases: CaseSummary[];
  next_cursor: string | null;
}

export interface CaseFilters {
  verdict?: Verdict | "";
  /** A decision, "none" (not reviewed) or "any" (reviewed). */
  decision?: Decision | "none" | "any" | "";
  model_version?: string;
  /** yyyy-mm-dd, inclusive, in UTC. */
  since?: string;
  until?: string;
  sha256?: string;
  disagreements?: boolean;
}

/** The query string for `filters` (empty ones left out); `until` is a whole day, so it becomes the next midnight. */
export function casesQuery(filters: CaseFilters, extra: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  if (filters.verdict) params.set("verdict", filters.verdict);
  if (filters.decision) params.set("decision", filters.decision);
  if (filters.model_version?.trim()) params.set("model_version", filters.model_version.trim());
  if (filters.since) params.set("since", `${filters.since}T00:00:00Z`);
  if (filters.until) {
    const next = new Date(`${filters.until}T00:00:00Z`);
    next.setUTCDate(next.getUTCDate() + 1);
    params.set("until", next.toISOString().replace(".000Z", "Z"));
  }
  const sha = filters.sha256?.trim().toLowerCase();
  if (sha && /^[0-9a-f]{64}$/.test(sha)) params.set("sha256", sha);
  if (filters.disagreements) params.set("disagreements", "true");
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  const query = params.toString();
  return query ? `?${query}` : "";
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch {
    throw new ApiError(0, "network", "could not reach the Détecteur API");
  }
  if (!response.ok) {
    let code = "http_error";
    let message = `the server answered ${response.status}`;
    try {
      const body = (await response.json()) as { error?: { code?: string; message?: string } };
      code = body.error?.code ?? code;
      message = body.error?.message ?? message;
    } catch {
      // not JSON
    }
    throw new ApiError(response.status, code, message);
  }
  return (await response.json()) as T;
}

/** One page of cases, newest first; `null` when the server keeps no cases (the store is off). */
export async function fetchCases(filters: CaseFilters, cursor?: string | null, limit = 50): Promise<CasePage | null> {
  const extra: Record<string, string> = { limit: String(limit) };
  if (cursor) extra.cursor = cursor;
  try {
    return await call<CasePage>(`/v1/cases${casesQuery(filters, extra)}`);
  } catch (error) {
    if (error instanceof ApiError && error.code === "cases_off") return null;
    throw error;
  }
}

/** Record a reviewer's decision and/or note (only the fields given change; null clears). */
export function reviewCase(id: number, change: { decision?: Decision | null; note?: string | null }): Promise<CaseSummary> {
  return call<CaseSummary>(`/v1/cases/${id}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(change),
  });
}

/** Download link of the matching cases: csv, jsonl, or zip (the labelled folder `detecteur data` reads). */
export function exportUrl(filters: CaseFilters, format: "csv" | "jsonl" | "zip"): string {
  return apiUrl(`/v1/cases/export${casesQuery(filters, { format })}`);
}

/** "Seen before on 3 Feb 2026, verdict synthetic (reviewed: confirmed authentic)". */
export function seenBeforeText(seen: {
  created_at: string;
  verdict: string;
  decision: Decision | null;
  times: number;
}): string {
  const when = new Date(seen.created_at).toLocaleString();
  const review = seen.decision ? ` (reviewed: ${DECISION_LABELS[seen.decision].toLowerCase()})` : "";
  const more = seen.times > 1 ? `; judged ${seen.times} times before` : "";
  return `Seen before on ${when}, verdict ${seen.verdict}${review}${more}`;
}
