import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, apiBase, explainError, fetchModel, predictImage, predictVideo } from "@/lib/api";

afterEach(() => vi.unstubAllGlobals());

function answer(status: number, body: unknown): Response {
  return new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": typeof body === "string" ? "text/html" : "application/json" },
  });
}

describe("apiBase", () => {
  it("is same-origin when unset (the static export) and drops trailing slashes", () => {
    expect(apiBase(undefined)).toBe("");
    expect(apiBase("http://127.0.0.1:8000/")).toBe("http://127.0.0.1:8000");
  });
});

describe("predictImage", () => {
  it("posts the image as multipart field `file` with explain=true", async () => {
    const fetchMock = vi.fn().mockResolvedValue(answer(200, { model_version: "x", results: [] }));
    vi.stubGlobal("fetch", fetchMock);
    await predictImage(new Blob(["jpeg"]), "face.jpg");
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe("/v1/predict?explain=true");
    expect(init.method).toBe("POST");
    expect((init.body as FormData).get("file")).toBeInstanceOf(Blob);
    expect(((init.body as FormData).get("file") as File).name).toBe("face.jpg");
  });

  it("turns the API's JSON error into an ApiError with its code", async () => {
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(answer(415, { error: { code: "unsupported_format", message: "not an image" } })));
    const error = await predictImage(new Blob(["x"]), "x.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 415, code: "unsupported_format", message: "not an image" });
  });

  it("reports a non-JSON error page by its status, and a refused connection as `network`", async () => {
    vi.stubGlobal("fetch", vi.fn().mockResolvedValue(answer(502, "<html>Bad gateway</html>")));
    await expect(fetchModel()).rejects.toMatchObject({ status: 502, code: "http_error" });
    vi.stubGlobal("fetch", vi.fn().mockRejectedValue(new TypeError("Failed to fetch")));
    vi.stubGlobal("window", { location: { origin: "http://127.0.0.1:8000" } });
    await expect(fetchModel()).rejects.toMatchObject({ status: 0, code: "network" });
  });
});

describe("explainError", () => {
  it("names the problem an analyst can act on", () => {
    expect(explainError(new ApiError(413, "file_too_large", "the file is 30 MB; the limit is 20 MB")).title).toBe("Too large");
    expect(explainError(new ApiError(415, "unsupported_format", "plain text is not a supported image format"))).toEqual({
      title: "Unsupported file",
      detail: "plain text is not a supported image format.",
    });
    expect(explainError(new ApiError(503, "model_loading", "loading")).title).toBe("Model still loading");
    expect(explainError(new ApiError(0, "network", "could not reach the API")).detail).toContain("Is the server running?");
    expect(explainError(new ApiError(422, "invalid_request", "bad")).title).toBe("Error 422");
  });
});

describe("predictVideo", () => {
  it("posts the clip as multipart field `file` to the video route", async () => {
    const fetchMock = vi.fn().mockResolvedValue(answer(200, { tracks: [] }));
    vi.stubGlobal("fetch", fetchMock);
    await predictVideo(new Blob(["webm"]), "clip.webm");
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe("/v1/predict/video");
    expect(((init.body as FormData).get("file") as File).name).toBe("clip.webm");
  });

  it("explains the video errors in plain words", () => {
    expect(explainError(new ApiError(413, "video_too_long", "the video lasts 130.0 s; the limit is 120 s"))).toEqual({
      title: "Video too long",
      detail: "the video lasts 130.0 s; the limit is 120 s. Trim the clip and try again.",
    });
    expect(explainError(new ApiError(422, "corrupt_video", "the MP4/MOV file has no video stream")).title).toBe("Damaged video");
    expect(explainError(new ApiError(413, "file_too_large", "too big")).title).toBe("Too large");
    expect(explainError(new ApiError(413, "too_many_pixels", "frames too big")).title).toBe("Too large");
    expect(explainError(new ApiError(415, "unsupported_format", "not a video")).title).toBe("Unsupported file");
  });
});
