"use client";

import type { KeyboardEvent, MouseEvent } from "react";
import type { VideoResponse } from "@/lib/types";
import { percent, verdictStyle } from "@/lib/verdict";
import {
  CHART_COLOURS,
  CHART_FRAME,
  chartScale,
  formatSeconds,
  keySeekTarget,
  nearestSample,
  sampleTimes,
  timeTicks,
  trackDash,
  trackLines,
} from "@/lib/video";

const { axisText: AXIS, thresholdText: THRESHOLD, grid: GRID, playhead: PLAYHEAD, pointFill: POINT_FILL } = CHART_COLOURS;

/** Each track's fake probability at every sampled frame, over the borderline band and the threshold. A click (or
 * the arrow keys, one sampled frame at a time) moves the video there. */
export default function ProbabilityChart({
  response,
  currentTime,
  onSeek,
}: {
  response: VideoResponse;
  currentTime: number;
  onSeek: (seconds: number) => void;
}) {
  const frame = CHART_FRAME;
  const scale = chartScale(response.video.duration_s);
  const lines = trackLines(response, scale);
  const times = sampleTimes(response);
  const [low, high] = response.borderline_band;
  const plotRight = frame.width - frame.right;
  const plotBottom = frame.height - frame.bottom;
  const current = nearestSample(times, currentTime);

  const onClick = (event: MouseEvent<SVGSVGElement>) => {
    const rect = event.currentTarget.getBoundingClientRect();
    onSeek(scale.timeAt(((event.clientX - rect.left) / rect.width) * frame.width));
  };

  const onKeyDown = (event: KeyboardEvent<HTMLDivElement>) => {
    const target = keySeekTarget(times, currentTime, event.key);
    if (target === null) return;
    event.preventDefault();
    onSeek(target);
  };

  const at = response.series[current];
  const valueText = at
    ? `${formatSeconds(at.time_s)}: ${Object.entries(at.fake_probability)
        .map(([track, probability]) => `track ${track} ${percent(probability)}`)
        .join(", ") || "no face"}`
    : formatSeconds(currentTime);

  return (
    <div>
      <div
        role="slider"
        tabIndex={0}
        aria-label="Playback position on the fake-probability chart"
        aria-valuemin={0}
        aria-valuemax={Math.round(scale.duration * 10) / 10}
        aria-valuenow={Math.round(currentTime * 10) / 10}
        aria-valuetext={valueText}
        onKeyDown={onKeyDown}
        className="rounded-lg border border-ink-line bg-ink-sunken/60 p-2"
      >
        <svg
          data-testid="video-chart"
          viewBox={`0 0 ${frame.width} ${frame.height}`}
          className="block h-auto w-full cursor-crosshair select-none"
          onClick={onClick}
          aria-hidden="true"
        >
          <rect
            data-testid="chart-band"
            x={frame.left}
            width={plotRight - frame.left}
            y={scale.y(high)}
            height={scale.y(low) - scale.y(high)}
            fill={verdictStyle("borderline").colour}
            fillOpacity={0.12}
          />
          {[0, 0.25, 0.5, 0.75, 1].map((p) => (
            <g key={p}>
              <line x1={frame.left} x2={plotRight} y1={scale.y(p)} y2={scale.y(p)} stroke={GRID} strokeWidth={1} />
              <text x={frame.left - 6} y={scale.y(p) + 4} fill={AXIS} fontSize={11} textAnchor="end">
                {percent(p)}
              </text>
            </g>
          ))}
          {timeTicks(scale.duration).map((tick) => (
            <g key={tick}>
              <line x1={scale.x(tick)} x2={scale.x(tick)} y1={plotBottom} y2={plotBottom + 4} stroke={AXIS} />
              <text x={scale.x(tick)} y={plotBottom + 17} fill={AXIS} fontSize={11} textAnchor="middle">
                {`${tick} s`}
              </text>
            </g>
          ))}
          <line
            data-testid="chart-threshold"
            x1={frame.left}
            x2={plotRight}
            y1={scale.y(response.threshold)}
            y2={scale.y(response.threshold)}
            stroke={THRESHOLD}
            strokeWidth={1}
            strokeDasharray="5 4"
          />
          <text x={plotRight - 4} y={scale.y(response.threshold) - 5} fill={THRESHOLD} fontSize={11} textAnchor="end">
            {`threshold ${percent(response.threshold, 1)}`}
          </text>
          <text x={plotRight - 4} y={scale.y(high) + 13} fill={verdictStyle("borderline").colour} fontSize={11} textAnchor="end" opacity={0.9}>
            borderline band
          </text>
          {lines.map((line, index) => {
            const colour = verdictStyle(line.verdict).colour;
            return (
              <g key={line.trackId} data-testid="chart-track" data-track={line.trackId}>
                <path d={line.path} fill="none" stroke={colour} strokeWidth={2.25} strokeDasharray={trackDash(index)} strokeLinejoin="round" />
                {line.points.map((point) => (
                  <circle
                    key={point.sample}
                    cx={point.x}
                    cy={point.y}
                    r={point.sample === current ? 4.5 : 2.5}
                    fill={point.sample === current ? colour : POINT_FILL}
                    stroke={colour}
                    strokeWidth={1.5}
                  />
                ))}
              </g>
            );
          })}
          <line
            data-testid="chart-playhead"
            x1={scale.x(currentTime)}
            x2={scale.x(currentTime)}
            y1={frame.top}
            y2={plotBottom}
            stroke={PLAYHEAD}
            strokeWidth={1.5}
          />
        </svg>
      </div>
      <ul className="mt-2 flex flex-wrap gap-x-5 gap-y-1 text-xs text-text-muted" aria-label="Chart legend">
        {lines.map((line, index) => (
          <li key={line.trackId} className="flex items-center gap-2">
            <svg width="28" height="8" aria-hidden="true">
              <line x1="1" x2="27" y1="4" y2="4" stroke={verdictStyle(line.verdict).colour} strokeWidth={2.25} strokeDasharray={trackDash(index)} />
            </svg>
            Track {line.trackId} ({verdictStyle(line.verdict).label.toLowerCase()})
          </li>
        ))}
        <li className="flex items-center gap-2">
          <span aria-hidden="true" className="inline-block h-2.5 w-5 rounded-sm" style={{ backgroundColor: `${verdictStyle("borderline").colour}40` }} />
          borderline band {percent(low)}–{percent(high)}
        </li>
        <li>Click the chart, or focus it and use the arrow keys, to move the video.</li>
      </ul>
    </div>
  );
}
