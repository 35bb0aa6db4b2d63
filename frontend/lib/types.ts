/**
 * The API contract, named for the dashboard. Every shape comes from `lib/api-schema.ts`, generated from the
 * service's OpenAPI schema (`make types`; `tests/apiSchema.test.ts` fails when it is stale), so a change to
 * `src/detecteur/api/schemas.py` reaches the dashboard's type check.
 */
import type { components } from "./api-schema";

type Schemas = components["schemas"];

export type Box = Schemas["Box"];
export type FaceResult = Schemas["FaceResult"];
export type Verdict = FaceResult["verdict"];
export type Timings = Schemas["Timings"];
export type ImageResult = Schemas["ImageResult"];
export type PredictResponse = Schemas["PredictResponse"];
export type ErrorBody = Schemas["ErrorResponse"];
/** The evidence lines of one image (issue 21): pixel model with its stability, content credentials, metadata. */
export type Stability = Schemas["StabilityResult"];
export type Evidence = Schemas["Evidence"];
export type EvidenceLine = Schemas["EvidenceLine"];
/** The case the server recorded for a check (when its cases store is on), and the earlier one of the same bytes. */
export type CaseLink = Schemas["CaseLink"];
export type SeenBefore = Schemas["SeenBefore"];

/** One training run that led to a model's weights (`GET /v1/model`'s `training_stages`, untyped in the schema). */
export interface TrainingStage {
  run: string;
  epochs: number;
  training_minutes: number;
  device: string;
  started_from: string;
}

export type ModelInfo = Omit<Schemas["ModelInfo"], "training_stages"> & {
  /** Every training run that led to these weights, oldest first (empty for older model files). */
  training_stages: TrainingStage[];
};

/** `POST /v1/predict/video`: one verdict per track (a face followed across sampled frames). */
export type VideoInfo = Schemas["VideoInfoResult"];
export type TrackFace = Schemas["TrackFaceResult"];
export type TrackResult = Schemas["TrackResult"];
export type SeriesPoint = Schemas["SeriesPoint"];
export type VideoResponse = Schemas["VideoResponse"];
