"use client";

import { useCallback, useEffect, useRef, useState } from "react";
import { ErrorAlert, Working } from "./AnalysisStatus";
import DropZone, { type DropZoneText } from "./DropZone";
import ProbabilityBar from "./ProbabilityBar";
import ProbabilityChart from "./ProbabilityChart";
import VerdictBadge from "./VerdictBadge";
import { explainError, predictVideo, type ErrorExplanation } from "@/lib/api";
import { thumbnailFrame, videoEntryFrom, type HistoryEntry } from "@/lib/history";
import { makeVideoThumbnail } from "@/lib/thumbnail";
import { boxRect, percentStyle } from "@/lib/geometry";
import type { VideoResponse } from "@/lib/types";
import { explainVerdict, percent, verdictStyle } from "@/lib/verdict";
import { boxesAt, formatSeconds, nearestSample, sampleTimes, trackRows, VIDEO_ACCEPT } from "@/lib/video";

/** Tall clips are shown at most this high (CSS px), as images are, so the verdict stays in view. */
const MAX_PLAYER_HEIGHT = 520;

const VIDEO_DROP: DropZoneText = {
  title: "Drop a video here",
  hint: "MP4, MOV, WebM or AVI · one clip at a time · up to 2 minutes",
  inputLabel: "Video to analyse",
  inputId: "video-file",
  inputTestId: "video-file-input",
  accept: VIDEO_ACCEPT,
  multiple: false,
  pasteable: false,
};

interface VideoAnalysis {
  filename: string;
  url: string;
  state: "running" | "done" | "failed";
  response?: VideoResponse;
  error?: ErrorExplanation;
}

/** One clip: the server follows every face across sampled frames and gives each person (track) a verdict; the
 * player shows the boxes of the sampled frame nearest the playback time, the chart the probabilities over time. */
export default function VideoView({ onAnalysed }: { onAnalysed: (entries: HistoryEntry[]) => void }) {
  const [analysis, setAnalysis] = useState<VideoAnalysis | null>(null);
  const [currentTime, setCurrentTime] = useState(0);
  const [unplayable, setUnplayable] = useState(false);
  const video = useRef<HTMLVideoElement>(null);
  const latest = useRef(0);
  const objectUrl = useRef<string | null>(null);

  useEffect(() => () => void (objectUrl.current && URL.revokeObjectURL(objectUrl.current)), []);

  const analyse = useCallback(async (files: File[]) => {
    const file = files[0];
    const filename = file.name || "video";
    const request = ++latest.current;
    setCurrentTime(0);
    setUnplayable(false);
    if (objectUrl.current) URL.revokeObjectURL(objectUrl.current);
    const url = URL.createObjectURL(file);
    objectUrl.current = url;
    setAnalysis({ filename, url, state: "running" });
    let response: VideoResponse;
    try {
      response = await predictVideo(file, filename);
    } catch (error) {
      if (request === latest.current) setAnalysis((current) => current && { ...current, state: "failed", error: explainError(error) });
      return;
    }
    // A clip dropped while this one was being judged replaces it; its answer is not shown for the new one,
    // but it was judged, so it goes into the history all the same.
    if (request === latest.current) setAnalysis((current) => current && { ...current, state: "done", response });
    const frame = thumbnailFrame(response);
    const thumbnail = await makeVideoThumbnail(url, frame?.time_s ?? 0);
    onAnalysed([videoEntryFrom({ ...response, filename }, thumbnail, frame?.sample ?? null)]);
  }, [onAnalysed]);

  const seek = (seconds: number) => {
    if (video.current) video.current.currentTime = seconds;
    setCurrentTime(seconds);
  };

  const response = analysis?.response;
  return (
    <div className="space-y-6">
      <DropZone onFiles={analyse} text={VIDEO_DROP} />
      <div aria-live="polite" className="sr-only">
        {analysis?.state === "running" ? "Analysing the video…" : analysis?.state === "done" ? "Video analysed." : ""}
      </div>
      {!analysis ? (
        <p className="text-sm text-text-muted">
          The server samples two frames a second, follows each face from frame to frame, and judges every sampled
          face with the same model as images. Each person gets a verdict; the video&apos;s verdict is its most
          suspicious person.
        </p>
      ) : (
        <article
          data-testid="video-analysis"
          data-state={analysis.state}
          aria-busy={analysis.state === "running"}
          className="rounded-xl border border-ink-line bg-ink-raised p-4 shadow-lg shadow-black/20 sm:p-5"
        >
          <header className="mb-4 flex flex-wrap items-center justify-between gap-3">
            <div className="min-w-0">
              <h3 className="truncate font-mono text-sm text-text" title={analysis.filename}>
                {analysis.filename}
              </h3>
              {response && (
                <p className="tabular text-xs text-text-muted">
                  {response.video.container} · {response.video.codec} · {response.video.width}×{response.video.height}px ·{" "}
                  {formatSeconds(response.video.duration_s)} · {response.tracks.length} track{response.tracks.length === 1 ? "" : "s"} ·
                  model {response.model_version}
                </p>
              )}
            </div>
            {analysis.state === "running" && <Working label="Analysing the video…" />}
            {response && (
              <div className="flex items-center gap-3">
                <span className="text-xs text-text-muted">Video verdict</span>
                <VerdictBadge verdict={response.verdict} size="lg" />
              </div>
            )}
          </header>

          {analysis.state === "failed" && analysis.error && <ErrorAlert error={analysis.error} testId="video-error" />}

          {analysis.state !== "failed" && (
            <div className="grid gap-5 lg:grid-cols-[minmax(0,3fr)_minmax(0,2fr)]">
              <div>
                <VideoPlayer
                  videoRef={video}
                  url={analysis.url}
                  filename={analysis.filename}
                  response={response}
                  currentTime={currentTime}
                  onTime={setCurrentTime}
                  unplayable={unplayable}
                  onUnplayable={() => setUnplayable(true)}
                />
                {unplayable && (
                  <p role="note" className="mt-2 text-xs text-verdict-borderline">
                    This browser cannot play this clip ({response ? `${response.video.container}, ${response.video.codec}` : "its format"}); the
                    server could, and its verdicts below stand.
                  </p>
                )}
                {response && (
                  <p data-testid="video-timings" className="tabular mt-2 text-xs text-text-muted">
                    Server time {response.timings.total_ms.toFixed(0)} ms — decode {response.timings.decode_ms.toFixed(0)} ms, face
                    detection {response.timings.faces_ms.toFixed(0)} ms, model {response.timings.model_ms.toFixed(0)} ms ·{" "}
                    {response.video.frames_sampled} frames sampled at {response.video.sample_fps.toFixed(1)} per second
                  </p>
                )}
              </div>
              {response && <VideoVerdict response={response} onSeek={seek} />}
            </div>
          )}

          {response && (
            <>
              <section aria-labelledby="video-chart-title" className="mt-6">
                <h4 id="video-chart-title" className="mb-2 text-sm font-semibold">
                  Fake probability over time
                </h4>
                <ProbabilityChart response={response} currentTime={currentTime} onSeek={seek} />
              </section>
              <section aria-labelledby="video-tracks-title" className="mt-6">
                <h4 id="video-tracks-title" className="mb-2 text-sm font-semibold">
                  People in the clip (tracks)
                </h4>
                <TrackTable response={response} onSeek={seek} />
              </section>
            </>
          )}
        </article>
      )}
    </div>
  );
}

function VideoPlayer({
  videoRef,
  url,
  filename,
  response,
  currentTime,
  onTime,
  unplayable,
  onUnplayable,
}: {
  videoRef: React.RefObject<HTMLVideoElement | null>;
  url: string;
  filename: string;
  response?: VideoResponse;
  currentTime: number;
  onTime: (seconds: number) => void;
  unplayable: boolean;
  onUnplayable: () => void;
}) {
  const sample = response ? nearestSample(sampleTimes(response), currentTime) : -1;
  // Boxes over a picture the browser cannot show would point at nothing.
  const boxes = response && !unplayable ? boxesAt(response.tracks, sample) : [];
  const { width, height } = response?.video ?? { width: 16, height: 9 };
  const update = (event: React.SyntheticEvent<HTMLVideoElement>) => onTime(event.currentTarget.currentTime);
  return (
    <div
      data-testid="video-player"
      className="relative mx-auto overflow-hidden rounded-md bg-ink-sunken ring-1 ring-ink-line"
      style={{ maxWidth: `${Math.round((MAX_PLAYER_HEIGHT * width) / height)}px` }}
    >
      <video
        ref={videoRef}
        src={url}
        controls
        playsInline
        preload="auto"
        aria-label={`Video ${filename}`}
        className={`block h-auto w-full bg-black ${response ? "" : "opacity-60"}`}
        style={{ aspectRatio: `${width} / ${height}` }}
        onTimeUpdate={update}
        onSeeked={update}
        onError={onUnplayable}
      />
      {/* The boxes let clicks through (pointer-events-none): the player's controls under them still work. */}
      {boxes.map((overlay) => {
        const colour = verdictStyle(overlay.verdict).colour;
        const nearTop = overlay.box.y < height * 0.08;
        return (
          <div
            key={overlay.trackId}
            data-testid="video-face-box"
            data-track={overlay.trackId}
            data-verdict={overlay.verdict}
            className="pointer-events-none absolute rounded-sm"
            style={{ ...percentStyle(boxRect(overlay.box), width, height), border: `2px solid ${colour}`, boxShadow: "0 0 0 1px rgba(0,0,0,0.6)" }}
          >
            <span
              className={`tabular absolute left-0 whitespace-nowrap px-1.5 py-px text-[11px] font-semibold text-ink ${
                nearTop ? "top-0 rounded-br-sm" : "-top-px -translate-y-full rounded-t-sm"
              }`}
              style={{ backgroundColor: colour }}
            >
              Track {overlay.trackId} · {percent(overlay.fakeProbability)}
            </span>
          </div>
        );
      })}
    </div>
  );
}

function VideoVerdict({ response, onSeek }: { response: VideoResponse; onSeek: (seconds: number) => void }) {
  const suspicious = response.tracks.find((track) => track.track_id === response.most_suspicious_track);
  return (
    <div className="space-y-3">
      {!response.face_detected && (
        <p role="note" data-testid="video-no-face" className="rounded-md border border-verdict-borderline/50 bg-verdict-borderline/10 p-3 text-sm">
          <span className="font-semibold text-verdict-borderline">No face found in any frame — judged whole frames.</span>{" "}
          The model was trained on face crops, so this verdict is less reliable.
        </p>
      )}
      <article
        data-testid="video-verdict"
        aria-label={`Video verdict: ${verdictStyle(response.verdict).label}`}
        className="rounded-lg border border-ink-line bg-ink-sunken/60 p-4"
        style={{ borderLeft: `3px solid ${verdictStyle(response.verdict).colour}` }}
      >
        <div className="flex flex-wrap items-center justify-between gap-2">
          <h4 className="text-sm font-semibold">
            {response.face_detected ? `Most suspicious: track ${response.most_suspicious_track}` : "Whole frames"}
          </h4>
          <VerdictBadge verdict={response.verdict} />
        </div>
        <p className="mt-3 flex items-baseline gap-2">
          <span className="tabular text-2xl font-semibold" style={{ color: verdictStyle(response.verdict).colour }}>
            {percent(response.fake_probability, 1)}
          </span>
          <span className="text-xs text-text-muted">mean fake probability over the track (calibrated)</span>
        </p>
        <div className="mt-2">
          <ProbabilityBar
            probability={response.fake_probability}
            verdict={response.verdict}
            threshold={response.threshold}
            band={response.borderline_band}
            label="Video fake probability"
          />
        </div>
        <p className="mt-1 text-xs text-text-muted">{explainVerdict(response.verdict, response.fake_probability, response.borderline_band)}</p>
        <dl className="tabular mt-2 grid grid-cols-2 gap-x-4 gap-y-1 text-xs">
          <dt className="text-text-muted">Confidence</dt>
          <dd>{percent(response.confidence, 1)}</dd>
          <dt className="text-text-muted">Threshold</dt>
          <dd>{percent(response.threshold, 1)}</dd>
          {suspicious && (
            <>
              <dt className="text-text-muted">Frames over threshold</dt>
              <dd>{percent(suspicious.fraction_over_threshold)}</dd>
              <dt className="text-text-muted">Seen</dt>
              <dd>
                <button
                  type="button"
                  onClick={() => onSeek(suspicious.first_s)}
                  className="rounded text-accent underline decoration-accent/50 underline-offset-2 hover:text-accent-strong"
                >
                  {formatSeconds(suspicious.first_s)} – {formatSeconds(suspicious.last_s)}
                </button>
              </dd>
            </>
          )}
        </dl>
      </article>
    </div>
  );
}

function TrackTable({ response, onSeek }: { response: VideoResponse; onSeek: (seconds: number) => void }) {
  const rows = trackRows(response);
  const cell = "px-3 py-2";
  return (
    <div className="overflow-x-auto rounded-lg border border-ink-line">
      <table data-testid="track-table" className="tabular w-full text-left text-sm">
        <caption className="sr-only">One row per person followed through the clip; the first row gives the video&apos;s verdict.</caption>
        <thead className="bg-ink-sunken text-xs text-text-muted">
          <tr>
            <th scope="col" className={cell}>Track</th>
            <th scope="col" className={cell}>Verdict</th>
            <th scope="col" className={`${cell} text-right`}>Mean fake probability</th>
            <th scope="col" className={`${cell} text-right`}>Frames over threshold</th>
            <th scope="col" className={`${cell} text-right`}>Frames seen</th>
            <th scope="col" className={cell}>Seen (click to play from)</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.trackId} data-testid="track-row" data-verdict={row.verdict} className="border-t border-ink-line">
              <th scope="row" className={`${cell} font-medium`}>
                <span className="inline-block h-2.5 w-2.5 rounded-full align-middle" aria-hidden="true" style={{ backgroundColor: verdictStyle(row.verdict).colour }} />{" "}
                Track {row.trackId}
                {row.mostSuspicious && response.tracks.length > 1 && <span className="ml-2 text-xs text-text-muted">(video verdict)</span>}
              </th>
              <td className={cell}>
                <VerdictBadge verdict={row.verdict} size="sm" />
              </td>
              <td className={`${cell} text-right`}>{percent(row.fakeProbability, 1)}</td>
              <td className={`${cell} text-right`}>{percent(row.fractionOverThreshold)}</td>
              <td className={`${cell} text-right`}>{row.framesSeen}</td>
              <td className={cell}>
                <button
                  type="button"
                  onClick={() => onSeek(row.firstS)}
                  aria-label={`Play track ${row.trackId} from ${formatSeconds(row.firstS)}`}
                  className="rounded text-accent underline decoration-accent/50 underline-offset-2 hover:text-accent-strong"
                >
                  {formatSeconds(row.firstS)} – {formatSeconds(row.lastS)}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
