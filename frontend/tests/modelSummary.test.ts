import { describe, expect, it } from "vitest";
import {
  architectureLabel,
  figureCaption,
  framingLabel,
  figureColumns,
  orderFigures,
  sourceRows,
  splitMetrics,
  trainingSources,
  trainingSummary,
} from "@/lib/modelSummary";

const METRICS = {
  test: { n: 1021, accuracy: 0.93, precision: 0.93, recall: 0.9, roc_auc: 0.984, false_positive_rate: 0.048, ece: 0.026 },
  per_source: {
    "lfw-faceswap": { n: 320, accuracy: 0.9625, recall: 0.9375, roc_auc: 0.993, false_positive_rate: 0.0125 },
    "stylegan-ffhq": { n: 190, accuracy: 0.7368, recall: 0.7368, roc_auc: 0.831, false_positive_rate: 0.263 },
    "sdfd-sd21": { n: 70, accuracy: 0.9714, recall: 0.9714, roc_auc: null, false_positive_rate: null },
    broken: "not a record",
  },
};

describe("model summary", () => {
  it("sums the training stages into one line, and says nothing when none are recorded", () => {
    const stage = { run: "faces-v2", epochs: 8, training_minutes: 176, device: "cpu", started_from: "ImageNet weights" };
    expect(trainingSummary([stage])).toBe("8 epochs, 2.9 h on cpu");
    expect(trainingSummary([{ ...stage, epochs: 1, training_minutes: 12.4 }])).toBe("1 epoch, 12 min on cpu");
    expect(trainingSummary([stage, { ...stage, run: "faces-v3", epochs: 7, training_minutes: 70, device: "cuda" }])).toBe(
      "15 epochs, 4.1 h on cpu + cuda (2 runs)",
    );
    expect(trainingSummary([])).toBeNull();
    expect(trainingSummary(undefined)).toBeNull();
  });

  it("reads the test split, with null for figures that do not exist", () => {
    expect(splitMetrics(METRICS, "test")).toMatchObject({ n: 1021, roc_auc: 0.984 });
    expect(splitMetrics(METRICS, "validation")).toBeNull();
    expect(sourceRows(METRICS).find((row) => row.source === "sdfd-sd21")?.roc_auc).toBeNull();
  });

  it("lists sources weakest first and skips malformed ones", () => {
    expect(sourceRows(METRICS).map((row) => row.source)).toEqual(["stylegan-ffhq", "lfw-faceswap", "sdfd-sd21"]);
    expect(sourceRows({})).toEqual([]);
  });

  it("groups training counts by source", () => {
    expect(trainingSources({ train: { "a/real": 10, "a/fake": 5, "b/fake": 7, "c/other": 1 }, val: {} })).toEqual([
      { source: "a", real: 10, fake: 5 },
      { source: "b", real: 0, fake: 7 },
    ]);
  });

  it("orders, captions and sizes figures", () => {
    const urls = ["/v1/model/figures/hardest_errors.png", "/v1/model/figures/zeta.png", "/v1/model/figures/roc.png"];
    expect(orderFigures(urls)).toEqual([urls[2], urls[0], urls[1]]);
    expect(figureCaption(urls[2])).toBe("ROC curve on the held-out test split");
    expect(figureCaption("/v1/model/figures/new_plot-v2.png")).toBe("new plot v2");
    expect([figureColumns(urls[0]), figureColumns(urls[2])]).toEqual([3, 1]);
  });

  it("captions, orders and sizes an ensemble member's training curves as training curves", () => {
    const member = "/v1/model/figures/training_curves_faces-v10.png";
    const urls = ["/v1/model/figures/hardest_errors.png", member, "/v1/model/figures/roc.png"];
    expect(orderFigures(urls)).toEqual([urls[2], member, urls[0]]);
    expect(figureCaption(member)).toBe(
      "Training curves of ensemble member faces-v10: loss and validation AUC per epoch",
    );
    expect(figureColumns(member)).toBe(2);
  });

  it("says what each framing reads, and names one it does not know", () => {
    expect(framingLabel("native_face_crop")).toBe("each detected face, at its own scale");
    expect(framingLabel("face_crop")).toBe("each detected face");
    expect(framingLabel("whole_image")).toBe("whole image");
    expect(framingLabel("tiles_96px")).toBe("tiles_96px");
  });

  it("names an ensemble by its members", () => {
    expect(architectureLabel("efficientnet_lite0", undefined)).toBe("efficientnet_lite0");
    expect(architectureLabel("efficientnet_lite0", [])).toBe("efficientnet_lite0");
    expect(architectureLabel("ensemble", ["efficientnet_lite0", "efficientnet_lite2"])).toBe(
      "ensemble of efficientnet_lite0 + efficientnet_lite2",
    );
  });
});
