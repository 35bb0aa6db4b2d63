/** The API contract, as `src/detecteur/api/schemas.py` defines it (see /docs on a running server). */

export type Verdict = "authentic" | "borderline" | "synthetic";

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

export interface FaceResult {
  box: Box | null;
  fake_probability: number;
  verdict: Verdict;
  confidence: number;
  heatmap_png?: string | null;
}

export interface Timings {
  decode_ms: number;
  faces_ms: number;
  model_ms: number;
  total_ms: number;
}

export interface ImageResult {
  filename: string | null;
  width: number;
  height: number;
  face_detected: boolean;
  verdict: Verdict;
  fake_probability: number;
  confidence: number;
  faces: FaceResult[];
  timings: Timings;
  /** The case the server recorded (when its cases store is on), and the earlier one of the same bytes. */
  case?: CaseLink | null;
}

export interface SeenBefore {
  case_id: number;
  created_at: string;
  verdict: Verdict;
  model_version: string;
  decision: "confirmed_synthetic" | "confirmed_authentic" | "unsure" | null;
  times: number;
}

export interface CaseLink {
  id: number;
  seen_before: SeenBefore | null;
}

export interface PredictResponse {
  model_version: string;
  threshold: number;
  borderline_band: [number, number];
  results: ImageResult[];
}

export interface ModelInfo {
  version: string;
  arch: string;
  /** For arch "ensemble": each member network's architecture. */
  members?: string[];
  in_chans: number;
  input_size: number;
  framing: string;
  labels: [string, string];
  threshold: number;
  borderline_band: [number, number];
  temperature: number;
  logit_adjustment: [number, number];
  metrics: Record<string, unknown>;
  data_summary: Record<string, unknown>;
  created_at: string;
  git_commit: string | null;
  /** Every training run that led to these weights, oldest first (empty for older model files). */
  training_stages?: TrainingStage[];
  figures: string[];
}

export interface TrainingStage {
  run: string;
  epochs: number;
  training_minutes: number;
  device: string;
  started_from: string;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

/** `POST /v1/predict/video`: one verdict per track (a face followed across sampled frames). */
export interface VideoInfo {
  container: string;
  codec: string;
  width: number;
  height: number;
  duration_s: number;
  fps: number | null;
  frames_sampled: number;
  sample_fps: number;
}

export interface TrackFace {
  /** Index of the sampled frame, into `series`. */
  sample: number;
  time_s: number;
  box: Box | null;
  fake_probability: number;
}

export interface TrackResult {
  track_id: number;
  frames_seen: number;
  first_s: number;
  last_s: number;
  fake_probability: number;
  fraction_over_threshold: number;
  verdict: Verdict;
  confidence: number;
  faces: TrackFace[];
}

export interface SeriesPoint {
  time_s: number;
  /** Per track id (as a string), for the tracks seen in this sampled frame. */
  fake_probability: Record<string, number>;
}

export interface VideoResponse {
  model_version: string;
  threshold: number;
  borderline_band: [number, number];
  filename: string | null;
  video: VideoInfo;
  face_detected: boolean;
  verdict: Verdict;
  fake_probability: number;
  confidence: number;
  most_suspicious_track: number;
  tracks: TrackResult[];
  series: SeriesPoint[];
  timings: Timings;
}
