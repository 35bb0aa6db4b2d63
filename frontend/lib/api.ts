/** Calls to the Détecteur API. In the static export the dashboard is served by the API itself, so the base
 * URL is empty (same origin); `npm run dev` sets NEXT_PUBLIC_API_URL (see .env.development). */

import type { ErrorBody, ModelInfo, PredictResponse, VideoResponse } from "./types";

export function apiBase(configured: string | undefined = process.env.NEXT_PUBLIC_API_URL): string {
  return (configured ?? "").trim().replace(/\/+$/, "");
}

export function apiUrl(path: string): string {
  return `${apiBase()}${path}`;
}

/** An API failure with the service's stable error code, or `network` when no answer came back. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  const error = (value as ErrorBody | null)?.error;
  return typeof error?.code === "string" && typeof error?.message === "string";
}

async function errorFrom(response: Response): Promise<ApiError> {
  try {
    const body: unknown = await response.json();
    if (isErrorBody(body)) return new ApiError(response.status, body.error.code, body.error.message);
  } catch {
    // Not JSON (a proxy's error page): fall through to the status line.
  }
  return new ApiError(response.status, "http_error", `the server answered ${response.status} ${response.statusText}`);
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch {
    throw new ApiError(0, "network", `could not reach the Détecteur API at ${apiBase() || window.location.origin}`);
  }
  if (!response.ok) throw await errorFrom(response);
  return (await response.json()) as T;
}

/** Judge one image; with `explain`, every face carries a Grad-CAM overlay. One request per image, so one bad
 * file does not sink the others. */
export function predictImage(file: Blob, filename: string, explain = true): Promise<PredictResponse> {
  const form = new FormData();
  form.append("file", file, filename);
  return request<PredictResponse>(`/v1/predict?explain=${explain}`, { method: "POST", body: form });
}

/** Judge one video clip: faces followed across sampled frames, one verdict per track. */
export function predictVideo(file: Blob, filename: string): Promise<VideoResponse> {
  const form = new FormData();
  form.append("file", file, filename);
  return request<VideoResponse>("/v1/predict/video", { method: "POST", body: form });
}

export function fetchModel(): Promise<ModelInfo> {
  return request<ModelInfo>("/v1/model");
}

export interface ErrorExplanation {
  title: string;
  detail: string;
}

/** What an analyst should read for a failed analysis: what happened, in plain words, and what to do. */
export function explainError(error: unknown): ErrorExplanation {
  if (!(error instanceof ApiError)) {
    return { title: "Analysis failed", detail: error instanceof Error ? error.message : String(error) };
  }
  const { code, status, message } = error;
  if (code === "network") return { title: "API unreachable", detail: `${message}. Is the server running?` };
  if (code === "video_too_long") return { title: "Video too long", detail: `${message}. Trim the clip and try again.` };
  if (status === 413) return { title: "Too large", detail: `${message}.` };
  if (status === 415) return { title: "Unsupported file", detail: `${message}.` };
  if (code === "model_loading") return { title: "Model still loading", detail: "Try again in a few seconds." };
  if (status === 503) return { title: "Model unavailable", detail: `${message}.` };
  if (code === "corrupt_image") return { title: "Damaged image", detail: `${message}.` };
  if (code === "corrupt_video") return { title: "Damaged video", detail: `${message}.` };
  if (code === "empty_file") return { title: "Empty file", detail: `${message}.` };
  if (code === "image_too_small") return { title: "Image too small", detail: `${message}.` };
  return { title: `Error ${status || ""}`.trim(), detail: `${message} (${code}).` };
}
