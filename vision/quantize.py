"""Static int8 (QDQ) ONNX export of the YOLO detector, calibrated on real frames.

    python -m vision.quantize [--weights models/yolov8n.pt] [--fixtures DIR] [--recipe NAME]

Weights int8 per output channel, activations uint8, scales from the activations seen on the
calibration frames (the development fixtures' photos and every 12th frame of their clips; never
`holdout/`). The Detect head's box decode (DFL, anchors, concat, sigmoid) always stays in float:
ultralytics leaves the same subgraph out of its own int8 exports because quantizing it costs box
accuracy. A recipe says how activation ranges are calibrated and which convolutions also stay in
float; `bench/int8_eval.py` measures every recipe against fp32 (docs/PERFORMANCE.md, "int8").
Whether int8 is served is `detector.precision` (vision/detector.py). Pure code (no Ray).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

CALIBRATION_VIDEO_STRIDE = 12  # every 12th frame of a 24 fps clip: 2 per second
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Recipe:
    name: str
    calibration: str  # minmax: the observed range; percentile: the 99.999th percentile (outliers clipped); entropy
    float_convs: tuple[str, ...] = ()  # which convolutions stay float besides the box decode: first, last, head
    # 7-bit weights: on x86 without VNNI, ONNX Runtime's u8 x s8 kernels (VPMADDUBSW) add pairs of
    # products in 16 bits, which saturate with full-range weights (ONNX Runtime's quantization docs)
    reduce_range: bool = False

    @property
    def title(self) -> str:
        kept = " + ".join(self.float_convs) or "nothing"
        return f"{self.calibration} ranges, float: box decode + {kept}" + (", 7-bit weights" if self.reduce_range else "")


# first: the stem conv (it sees the raw pixels); last: the final conv of each box/class branch (its
# output is the score); head: every Detect-head conv. Measured against fp32 by bench/int8_eval.py.
RECIPES = {r.name: r for r in (
    Recipe("minmax", "minmax"),
    Recipe("minmax-first-last", "minmax", ("first", "last")),
    Recipe("percentile", "percentile"),
    Recipe("percentile-last", "percentile", ("last",)),
    Recipe("percentile-head", "percentile", ("head",)),
    Recipe("entropy", "entropy"),
    Recipe("percentile-7bit", "percentile", reduce_range=True),
)}
DEFAULT_RECIPE = "percentile"  # one photo off fp32 (the fewest, with percentile-last) and the fastest of those


def calibration_files(fixtures: Path) -> list[Path]:
    """The development set only: `images/` and `videos/` (never `holdout/`)."""
    files = sorted(p for p in (fixtures / "images").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files += sorted((fixtures / "videos").glob("*.mp4"))
    return files


def calibration_frames(files: Iterable[Path]) -> Iterator[np.ndarray]:
    """BGR frames as the service decodes them: photos whole, clips every `CALIBRATION_VIDEO_STRIDE`th frame."""
    import cv2

    for path in files:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                yield image
            continue
        capture = cv2.VideoCapture(str(path))
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the clips carry a rotation tag (MANIFEST.md)
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % CALIBRATION_VIDEO_STRIDE == 0:
                yield frame
            index += 1
        capture.release()


def int8_export_path(fp32_onnx: Path, files: list[Path], image_size: int, recipe: Recipe) -> Path:
    """Named by the fp32 export (itself named by the weights' content), the recipe, the calibration
    files and the input size: new weights or new calibration frames give a new file."""
    digest = hashlib.sha256(fp32_onnx.name.encode() + str(image_size).encode())
    for path in files:
        digest.update(path.name.encode() + str(path.stat().st_size).encode())
    return fp32_onnx.with_name(f"{_stem(fp32_onnx)}-int8-{recipe.name}-{digest.hexdigest()[:8]}.onnx")


def _stem(fp32_onnx: Path) -> str:
    return fp32_onnx.stem.removesuffix("-dynamic")


def find_int8_export(fp32_onnx: Path, recipe: str = DEFAULT_RECIPE) -> Path | None:
    """The newest int8 export of this fp32 export by `recipe`, if any (a replica needs no fixtures)."""
    found = sorted(fp32_onnx.parent.glob(f"{_stem(fp32_onnx)}-int8-{recipe}-*.onnx"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _head(model) -> str:
    last = max(int(n.name.split("/")[1].split(".")[1]) for n in model.graph.node
               if n.name.startswith("/model.") and n.name.split("/")[1].split(".")[1].isdigit())
    return f"/model.{last}/"


def head_decode_nodes(model) -> list[str]:
    """Nodes of the Detect head that decode boxes and scores: everything in the last module outside
    its box and class convolution branches (cv2, cv3), the DFL included. Left in float."""
    head = _head(model)
    branches = (head + "cv2.", head + "cv3.")
    return [n.name for n in model.graph.node if n.name.startswith(head) and not n.name.startswith(branches)]


def float_conv_nodes(model, which: tuple[str, ...]) -> list[str]:
    """The convolutions a recipe keeps in float."""
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    head = _head(model)
    chosen = []
    if "first" in which:
        chosen.append(convs[0])
    if "last" in which:  # e.g. /model.22/cv3.0/cv3.0.2/Conv: the last conv of a branch, no activation after it
        chosen += [n for n in convs if n.startswith(head) and n.split("/")[-2].count(".") == 2
                   and n.split("/")[-2].endswith(".2")]
    if "head" in which:
        chosen += [n for n in convs if n.startswith(head)]
    return sorted(set(chosen))


def export_int8(fp32_onnx: Path, files: list[Path], image_size: int, recipe: Recipe | None = None,
                stride: int = 32) -> Path:
    """Quantize once (10 s with min/max ranges, about 90 s with percentiles, on 2 cores); later
    calls find the file."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from ultralytics.data.augment import LetterBox

    recipe = recipe or RECIPES[DEFAULT_RECIPE]
    target = int8_export_path(fp32_onnx, files, image_size, recipe)
    if target.is_file():
        return target
    if not files:
        raise FileNotFoundError("no calibration frames: int8 needs the development fixtures (images/, videos/)")
    # Square, so every calibration tensor has one shape (the histogram calibrators stack them).
    letterbox = LetterBox((image_size, image_size), auto=False, stride=stride)
    input_name = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0].name

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.frames = calibration_frames(files)

        def get_next(self):
            frame = next(self.frames, None)
            if frame is None:
                return None
            tensor = letterbox(image=frame)[..., ::-1].transpose(2, 0, 1)[None]  # as the detector feeds it
            return {input_name: np.ascontiguousarray(tensor, dtype=np.float32) / 255}

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        excluded = head_decode_nodes(graph) + float_conv_nodes(graph, recipe.float_convs)
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[recipe.calibration]
        staged = Path(work) / target.name
        quantize_static(str(prepared), str(staged), Frames(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=method, nodes_to_exclude=excluded, reduce_range=recipe.reduce_range,
                        extra_options={"CalibPercentile": 99.999, "CalibTensorRangeSymmetric": False})
        os.replace(staged, target)  # atomic: replicas starting together never read half a file
    return target


def main() -> None:
    from settings import AppConfig, load_args
    from vision.detector import export_onnx

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="default: detector.weights in config/serve.yaml")
    parser.add_argument("--fixtures", default=os.environ.get("PROCTOR_TEST_FIXTURES"),
                        help="the development fixtures (default $PROCTOR_TEST_FIXTURES)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE)
    opts = parser.parse_args()
    cfg = AppConfig.model_validate(load_args()).detector
    weights = Path(opts.weights) if opts.weights else cfg.weights_path()
    if not opts.fixtures or not Path(opts.fixtures).is_dir():
        print("vision.quantize: no development fixtures ($PROCTOR_TEST_FIXTURES): no int8 model; fp32 is used")
        return
    print(export_int8(export_onnx(weights), calibration_files(Path(opts.fixtures)), cfg.image_size,
                      RECIPES[opts.recipe]))


if __name__ == "__main__":
    main()
