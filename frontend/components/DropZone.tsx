"use client";

import { type DragEvent, useEffect, useRef, useState } from "react";

export interface DropZoneText {
  title: string;
  hint: string;
  /** The file input's accessible name and id (ids must differ when two zones share the page). */
  inputLabel: string;
  inputId: string;
  inputTestId: string;
  accept: string;
  multiple: boolean;
  /** Whether a paste anywhere on the page goes to this zone (only one zone may listen). */
  pasteable: boolean;
}

const IMAGES: DropZoneText = {
  title: "Drop face images here",
  hint: "paste with Ctrl+V · JPEG, PNG, WebP, GIF, BMP, TIFF · several at once",
  inputLabel: "Images to analyse",
  inputId: "image-files",
  inputTestId: "file-input",
  accept: "image/*",
  multiple: true,
  pasteable: true,
};

/** Images come in three ways: dropped on the zone, picked with the file dialog, or pasted (Ctrl/Cmd+V). Every file
 * goes to the API, which says clearly what it cannot read, so nothing is filtered out silently here. The video view
 * uses the same zone with its own `text`. */
export default function DropZone({ onFiles, text = IMAGES }: { onFiles: (files: File[]) => void; text?: DropZoneText }) {
  const input = useRef<HTMLInputElement>(null);
  const [dragging, setDragging] = useState(false);

  useEffect(() => {
    if (!text.pasteable) return;
    const onPaste = (event: ClipboardEvent) => {
      const files = Array.from(event.clipboardData?.files ?? []);
      if (files.length === 0) return;
      event.preventDefault();
      onFiles(files);
    };
    window.addEventListener("paste", onPaste);
    return () => window.removeEventListener("paste", onPaste);
  }, [onFiles, text.pasteable]);

  const onDrop = (event: DragEvent<HTMLDivElement>) => {
    event.preventDefault();
    setDragging(false);
    const files = Array.from(event.dataTransfer.files);
    if (files.length > 0) onFiles(files);
  };

  return (
    <div
      data-testid="dropzone"
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
      className={`flex flex-col items-center justify-center gap-3 rounded-xl border-2 border-dashed px-6 py-10 text-center transition-colors ${
        dragging ? "border-accent bg-accent/5" : "border-ink-line bg-ink-raised/60"
      }`}
    >
      <svg aria-hidden="true" width="40" height="40" viewBox="0 0 24 24" fill="none" stroke="#7cc4ff" strokeWidth="1.5">
        <path d="M4 8V5a1 1 0 0 1 1-1h3M16 4h3a1 1 0 0 1 1 1v3M20 16v3a1 1 0 0 1-1 1h-3M8 20H5a1 1 0 0 1-1-1v-3" />
        <circle cx="12" cy="11" r="3" />
        <path d="M7.5 18c.8-2.2 2.4-3.3 4.5-3.3s3.7 1.1 4.5 3.3" />
      </svg>
      <div>
        <p className="text-base font-medium">{text.title}</p>
        <p className="mt-1 text-sm text-text-muted">
          or{" "}
          <button
            type="button"
            onClick={() => input.current?.click()}
            className="rounded font-semibold text-accent underline decoration-accent/50 underline-offset-4 hover:text-accent-strong"
          >
            {text.multiple ? "choose files" : "choose a file"}
          </button>{" "}
          · {text.hint}
        </p>
      </div>
      <label htmlFor={text.inputId} className="sr-only">
        {text.inputLabel}
      </label>
      <input
        ref={input}
        id={text.inputId}
        data-testid={text.inputTestId}
        type="file"
        multiple={text.multiple}
        accept={text.accept}
        className="sr-only"
        tabIndex={-1}
        onChange={(event) => {
          const files = Array.from(event.target.files ?? []);
          event.target.value = "";
          if (files.length > 0) onFiles(files);
        }}
      />
    </div>
  );
}
