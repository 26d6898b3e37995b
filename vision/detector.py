"""Object detection with ultralytics YOLO (COCO classes), with per-class thresholds.

Pure code (no Ray): `ObjectDetectorModel.detect_batch(images)` takes BGR arrays and returns, per
image, a list of `contracts.Detection` (label, confidence, box [x0, y0, x1, y1]) for the classes
that matter to proctoring, best first.

Besides the one pass of `detector.weights`, a frame can get more looks (`detector.extra_looks`:
another model, input size or the mirror image, for some classes), fused per class with the first
pass (`fuse_class`), and a closer look at crops around persons (`detector.second_look`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from contracts import Detection
from settings import PROJECT_ROOT, DetectorConfig, ExtraLookConfig, PhoneAtEarConfig, SecondLookConfig

# COCO class names as YOLO reports them -> the label Proctor reports.
REPORTED_CLASSES = {
    "person": "person",
    "cell phone": "cell phone",
    "book": "book",
    "laptop": "laptop",
    "tv": "tv",
    "remote": "remote",
    "keyboard": "keyboard",
    "mouse": "mouse",
}


ONNX_CACHE = PROJECT_ROOT / "models" / "onnx"
FUSION_IOU = 0.5  # boxes of one class from different looks overlapping by more than this are one object
WBF_FLOOR = 0.05  # with weighted box fusion every look reports boxes down to this confidence


def onnx_export_path(weights: Path) -> Path:
    """Where the ONNX export of `weights` lives: named by the weights' content, so new weights at
    the same path get a new export."""
    weights = weights.resolve()  # a link (models/yolov8n.pt -> the file) names the file it points to
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    return ONNX_CACHE / f"{weights.stem}-{digest}-dynamic.onnx"


def export_onnx(weights: Path) -> Path:
    """Export the weights to ONNX once (about 10 s); later calls find the file. Dynamic batch and
    image shape, so webcam frames run letterboxed to 640x480 rather than padded to 640x640."""
    target = onnx_export_path(weights)
    if target.is_file():
        return target
    from ultralytics import YOLO

    disable_ultralytics_analytics()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        copy = Path(work) / weights.name  # ultralytics writes the export beside its input
        shutil.copyfile(weights, copy)
        exported = YOLO(str(copy), task="detect").export(format="onnx", dynamic=True, simplify=True,
                                                          imgsz=640, verbose=False)
        os.replace(exported, target)  # atomic: replicas starting together never read half a file
    return target


def disable_ultralytics_analytics() -> None:
    """ultralytics reports predict and export calls to Google Analytics when online (settings
    `sync`); a proctoring service sends nothing about its use anywhere."""
    from ultralytics.utils import events

    events.events.enabled = False


class ObjectDetectorModel:
    def __init__(self, cfg: DetectorConfig | None = None, onnx_model: Path | None = None):
        """`onnx_model`: serve this ONNX file instead of the one `precision` picks (benchmarks)."""
        import torch
        from ultralytics import YOLO

        disable_ultralytics_analytics()

        self.cfg = cfg or DetectorConfig()
        path = self.cfg.weights_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"YOLO weights not found at {path}: run `make install` (fetches models/yolov8n.pt and "
                "models/yolo11n.pt) or set detector.weights / detector.extra_looks in config/serve.yaml"
            )
        # Ray and ultralytics leave torch on 1 thread; inference is ~2x faster on 2.
        torch.set_num_threads(self.cfg.threads)
        self.model = YOLO(str(path), task="detect")
        self.device = torch.device(self.cfg.device)
        self.stride = int(max(self.model.model.stride))
        if self.cfg.backend == "torch":
            # channels-last, as ultralytics' own predict does on x86 CPUs: ~20% faster convolutions here
            self.network = self.model.model.eval().to(self.device, memory_format=torch.channels_last)
        self.session = None
        self.precision = "fp32"  # or int8: what _onnx_model chose
        self.startup_ms: dict[str, float] = {}  # auto: each precision's measured ms per frame
        self.split_sessions: list = []
        if self.cfg.backend == "onnxruntime":
            import onnxruntime

            onnx_path = str(onnx_model or self._onnx_model(export_onnx(path)))
            providers = ["CPUExecutionProvider"]
            if self.device.type == "cuda":
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device.index or 0}))

            def onnx_session(threads: int):
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                # No busy-waiting between runs: spinning threads burn the cores that face/gaze, the
                # ingress and the other replicas on this node need (measured in docs/PERFORMANCE.md).
                options.add_session_config_entry("session.intra_op.allow_spinning",
                                                 "1" if self.cfg.onnx_spinning else "0")
                return onnxruntime.InferenceSession(onnx_path, options, providers=providers)

            self.session = onnx_session(self.cfg.threads)
            self.onnx_input = self.session.get_inputs()[0].name
            if self.cfg.split_batches and self.cfg.threads > 1 and self.device.type == "cpu":
                # A lone frame gets every thread (lowest latency). A batch, which means frames are
                # queueing, is split over single-thread runs in parallel: no per-layer thread sync,
                # so less CPU per frame when it is scarce (docs/PERFORMANCE.md).
                self.split_sessions = [onnx_session(1) for _ in range(self.cfg.threads)]
                self.split_pool = ThreadPoolExecutor(self.cfg.threads, thread_name_prefix="yolo-split")
        names = self.model.names
        self._class_ids = [i for i, n in names.items() if n in REPORTED_CLASSES]
        self._names = names
        self._phone_id = next(i for i, n in names.items() if n == "cell phone")
        # With weighted box fusion every look reports the fused classes down to the WBF floor (the
        # threshold applies to the fused confidence); with the hand-at-ear rule, phones down to its
        # candidate floor.
        self._wbf_labels = {label for look in self.cfg.extra_looks for label in look.classes} \
            if self.cfg.fusion == "wbf" else set()
        self.phone_at_ear = None
        if self.cfg.phone_at_ear.enabled:
            from vision.phone_at_ear import PhoneAtEar

            self.phone_at_ear = PhoneAtEar(self.cfg.phone_at_ear.head_share)
        self._min_conf = min(self.floor(label) for label in {*REPORTED_CLASSES.values()})
        # Other weights (extra looks, the crops' look) are detectors of their own, one per file.
        self._networks: dict[Path, ObjectDetectorModel] = {path.resolve(): self}
        self.looks = [(look, self._network(look.weights)) for look in self.cfg.extra_looks]
        self.looks_run: dict[int, int] = {}  # id(look) -> frames it ran on (bench/gate_eval.py reports them)
        for look, _ in self.looks:
            unknown = set(look.classes) - set(REPORTED_CLASSES.values())
            if unknown:
                raise ValueError(f"detector.extra_looks: {sorted(unknown)} are not reported labels "
                                 f"({sorted(REPORTED_CLASSES.values())})")
        if self.looks and self.cfg.backend == "ultralytics":
            raise ValueError("detector.extra_looks need the onnxruntime or torch backend")
        self.crop_network = self._network(self.cfg.second_look.weights) if self.cfg.second_look.enabled else self

    def floor(self, label: str) -> float:
        """The lowest confidence at which a look reports `label` (its threshold unless fusion or the
        hand-at-ear rule decide later)."""
        floor = self.cfg.threshold(label)
        if label in self._wbf_labels:
            floor = min(floor, WBF_FLOOR)
        if label == "cell phone" and self.phone_at_ear is not None:
            floor = min(floor, self.cfg.phone_at_ear.candidate_floor)
        for look in self.cfg.extra_looks:  # the first pass must see what asks for an uncertain look
            if look.when == "uncertain" and label in look.classes:
                floor = min(floor, look.uncertain_floor)
        return floor

    def _network(self, weights: str | None) -> ObjectDetectorModel:
        """The detector that runs `weights` (None: this one), made once per file with this config's
        backend, device and threads, and no looks of its own."""
        if weights is None:
            return self
        path = DetectorConfig(weights=weights).weights_path().resolve()
        if path not in self._networks:
            # No split single-thread sessions: another look runs on few frames, and each session costs memory.
            own = self.cfg.model_copy(update={"weights": str(path), "extra_looks": [], "second_look": SecondLookConfig(),
                                              "phone_at_ear": PhoneAtEarConfig(enabled=False),
                                              "split_batches": False}, deep=True)
            self._networks[path] = ObjectDetectorModel(own)
        return self._networks[path]

    def _onnx_model(self, fp32: Path) -> Path:
        """The ONNX file to serve: fp32, or the static int8 export (vision/quantize.py) when
        `precision` asks for it, or, for `auto`, when it runs faster on this CPU (measured now: int8
        gains most where the CPU has VNNI, and may lose where it has not)."""
        from vision.quantize import find_int8_export

        self.precision = "fp32"
        if self.cfg.precision == "fp32" or self.device.type != "cpu":
            return fp32
        int8 = find_int8_export(fp32)
        if int8 is None:
            if self.cfg.precision == "int8":
                raise FileNotFoundError(f"detector.precision is int8 but no int8 export of {fp32.name} is in "
                                        f"{fp32.parent}: run `python -m vision.quantize` (needs calibration frames)")
            return fp32
        if self.cfg.precision == "auto":
            self.startup_ms = {name: self._time_onnx(model) for name, model in (("fp32", fp32), ("int8", int8))}
            if self.startup_ms["int8"] >= self.startup_ms["fp32"]:
                return fp32
        self.precision = "int8"
        return int8

    def _time_onnx(self, model: Path, runs: int = 7) -> float:
        """Median ms of one 640x480 frame's network run on `threads` threads."""
        import time

        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.cfg.threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        height = -(-480 * self.cfg.image_size // 640 // self.stride) * self.stride
        batch = {session.get_inputs()[0].name: np.zeros((1, 3, height, self.cfg.image_size), np.float32)}
        session.run(None, batch)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            session.run(None, batch)
            times.append((time.perf_counter() - started) * 1000)
        return round(sorted(times)[runs // 2], 2)

    def warm_up(self) -> None:
        self.detect_batch([np.zeros((480, 640, 3), dtype=np.uint8)])
        # ultralytics' first predict resets torch to (cores - 1) threads; set ours again after it.
        import torch

        torch.set_num_threads(self.cfg.threads)

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if not images:
            return []
        if self.cfg.backend == "ultralytics":
            results = self.model.predict(images, imgsz=self.cfg.image_size, conf=self._min_conf, device=self.cfg.device,
                                         classes=self._class_ids, iou=self.cfg.nms_iou, verbose=False)
            found = [self._postprocess(r.boxes.xyxy, r.boxes.conf, r.boxes.cls) for r in results]
        else:
            found = [self._postprocess(d[:, :4], d[:, 4], d[:, 5])
                     for d in self._infer(images, self.cfg.image_size, self._min_conf, self._class_ids)]
        if self.looks:
            found = self._fuse_looks(images, found)
        found = self._report(images, found)
        if self.cfg.second_look.enabled:
            self._second_look(images, found)
        return found

    def _infer(self, images: list[np.ndarray], image_size: int, conf: float, classes: list[int]):
        """YOLO without ultralytics' per-call predictor machinery (about 20 ms a call on this CPU),
        with its own letterbox, NMS and box scaling, so the detections are the ones predict gives.
        Returns per image an (n, 6) tensor: x0, y0, x1, y1 in the image's pixels, confidence, class."""
        import torch
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils import nms, ops

        # As predict does: minimal (rect) padding when all frames share a shape, else a square.
        same_shapes = len({image.shape for image in images}) == 1
        letterbox = LetterBox((image_size, image_size), auto=same_shapes, stride=self.stride)
        batch = np.stack([letterbox(image=image) for image in images])
        batch = np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2))  # BGR HWC -> RGB CHW
        tensor = torch.from_numpy(batch).float().div_(255)
        with torch.inference_mode():
            if self.session is not None:
                raw = torch.from_numpy(self._run_onnx(tensor.numpy()))
            else:
                raw = self.network(tensor.to(self.device).contiguous(memory_format=torch.channels_last))
                raw = raw[0] if isinstance(raw, (list, tuple)) else raw
            kept = nms.non_max_suppression(raw, conf, self.cfg.nms_iou, classes, max_det=300)
            for detections, image in zip(kept, images):
                detections[:, :4] = ops.scale_boxes(tensor.shape[2:], detections[:, :4], image.shape)
        return [detections.cpu() for detections in kept]

    def _run_onnx(self, batch: np.ndarray) -> np.ndarray:
        if len(batch) < 2 or not self.split_sessions:
            return self.session.run(None, {self.onnx_input: batch})[0]
        parts = [part for part in np.array_split(batch, len(self.split_sessions)) if len(part)]
        runs = [self.split_pool.submit(session.run, None, {self.onnx_input: part})
                for session, part in zip(self.split_sessions, parts)]
        return np.concatenate([run.result()[0] for run in runs])

    def _second_look(self, images: list[np.ndarray], found: list[list[Detection]]) -> None:
        """Phones held in a hand or at an ear are small in the full frame; in a crop of the person's
        head and upper body they are several times larger. All crops of a batch go in one call."""
        look = self.cfg.second_look
        crops, owners = [], []
        for index, (image, detections) in enumerate(zip(images, found)):
            height, width = image.shape[:2]
            persons = sorted((d for d in detections if d.label == "person"),
                             key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
            for person in persons[: look.max_persons]:
                x0, y0, x1, y1 = person.box
                bw, bh = x1 - x0, y1 - y0
                cx0, cy0 = int(max(0, x0 - 0.15 * bw)), int(max(0, y0 - 0.05 * bh))
                cx1, cy1 = int(min(width, x1 + 0.15 * bw)), int(min(height, y0 + 0.75 * bh))
                if cx1 - cx0 < 32 or cy1 - cy0 < 32:
                    continue
                crops.append(image[cy0:cy1, cx0:cx1])
                owners.append((index, cx0, cy0))
        if not crops:
            return
        results = self._crops_infer(crops, look)
        for (index, ox, oy), result in zip(owners, results):
            detections = found[index]
            for box, score in zip(result[:, :4].numpy(), result[:, 4].numpy()):
                box = (float(box[0] + ox), float(box[1] + oy), float(box[2] + ox), float(box[3] + oy))
                # The model confuses papers and books with phones: a book in the same place wins.
                if any(d.label == "book" and iou(d.box, box) > look.book_overlap_iou for d in detections):
                    continue
                same = [i for i, d in enumerate(detections) if d.label == "cell phone" and iou(d.box, box) > 0.5]
                if same:
                    first = detections[same[0]]
                    detections[same[0]] = replace(first, confidence=max(first.confidence, round(float(score), 3)))
                    continue
                detections.append(Detection("cell phone", round(float(score), 3), tuple(round(v, 1) for v in box),
                                            source="second_look"))
            detections.sort(key=lambda d: -d.confidence)

    def _crops_infer(self, crops: list[np.ndarray], look: SecondLookConfig):
        if self.cfg.backend == "ultralytics":
            import torch

            results = self.model.predict(crops, imgsz=look.image_size, conf=look.threshold, device=self.cfg.device,
                                         classes=[self._phone_id], iou=self.cfg.nms_iou, verbose=False)
            return [torch.cat([r.boxes.xyxy, r.boxes.conf[:, None], r.boxes.cls[:, None]], 1) for r in results]
        return self.crop_network._infer(crops, look.image_size, look.threshold, [self._phone_id])

    def _look(self, images: list[np.ndarray], look: ExtraLookConfig, floors: dict[str, float]) -> list[list[Detection]]:
        """One extra look's detections of its classes (`floors`: label -> lowest confidence), per image."""
        class_ids = [i for i, n in self._names.items() if REPORTED_CLASSES.get(n) in floors]
        seen = [np.ascontiguousarray(image[:, ::-1]) for image in images] if look.flip else images
        out = []
        for detections, image in zip(self._infer(seen, look.image_size, min(floors.values()), class_ids), images):
            width = image.shape[1]
            kept = []
            for x0, y0, x1, y1, score, class_id in detections.numpy():
                label = REPORTED_CLASSES[self._names[int(class_id)]]
                if score < floors[label]:
                    continue
                if look.flip:
                    x0, x1 = width - x1, width - x0
                kept.append(Detection(label, round(float(score), 3), tuple(round(float(v), 1) for v in (x0, y0, x1, y1)),
                                      source="extra_look"))
            out.append(kept)
        return out

    def _asks_for(self, look: ExtraLookConfig, first: list[Detection]) -> bool:
        """Whether a frame with these first-pass detections gets `look`: always, or (when: uncertain)
        when for one of its classes the first pass's best box lies between the look's floor and the
        class's threshold (a candidate, and nothing sure of that class)."""
        if look.when == "always":
            return True
        for label in look.classes:
            best = max((d.confidence for d in first if d.label == label), default=0.0)
            if look.uncertain_floor <= best < self.cfg.threshold(label):
                return True
        return False

    def _fuse_looks(self, images: list[np.ndarray], found: list[list[Detection]]) -> list[list[Detection]]:
        """The first pass's detections with every extra look's, fused per class (`fuse_class`). A look
        runs on the frames that ask for it (`_asks_for`); the others keep their first pass."""
        per_look = []
        for look, network in self.looks:
            asked = [i for i, first in enumerate(found) if self._asks_for(look, first)]
            self.looks_run[id(look)] = self.looks_run.get(id(look), 0) + len(asked)
            seen = network._look([images[i] for i in asked], look, {label: self.floor(label) for label in look.classes}) \
                if asked else []
            results: list[list[Detection] | None] = [None] * len(images)
            for i, detections in zip(asked, seen):
                results[i] = detections
            per_look.append((look, results))
        fused = []
        for index, first in enumerate(found):
            labels = {label for look, _ in per_look for label in look.classes}
            out = [d for d in first if d.label not in labels]
            for label in sorted(labels):
                ran = [(look, results[index]) for look, results in per_look
                       if label in look.classes and results[index] is not None]
                looks = [] if any(look.replaces_first_pass for look, _ in ran) else [[d for d in first if d.label == label]]
                looks += [[d for d in seen if d.label == label] for _, seen in ran]
                out += fuse_class(looks, self.cfg.fusion)
            fused.append(out)
        return fused

    def _report(self, images: list[np.ndarray], found: list[list[Detection]]) -> list[list[Detection]]:
        """Per image, the detections at their class thresholds, plus the phones under the threshold
        that lie on a hand raised to the head (`detector.phone_at_ear`), best first."""
        out = []
        for image, detections in zip(images, found):
            kept = [d for d in detections if d.confidence >= self.cfg.threshold(d.label)]
            if self.phone_at_ear is not None:
                weak = [d for d in detections if d.label == "cell phone" and d.confidence < self.cfg.threshold(d.label)]
                if weak:  # MediaPipe runs only here: most frames have no phone-like box at all
                    kept += self.phone_at_ear.confirm(image, weak, [d for d in kept if d.label == "person"])
            kept.sort(key=lambda d: -d.confidence)
            out.append(kept)
        return out

    def _postprocess(self, xyxy, conf, cls) -> list[Detection]:
        """Reported classes down to their floors (`floor`); `_report` applies the thresholds."""
        if len(conf) == 0:
            return []
        xyxy, conf, cls = xyxy.cpu().numpy(), conf.cpu().numpy(), cls.cpu().numpy().astype(int)
        out = []
        for box, score, class_id in zip(xyxy, conf, cls):
            label = REPORTED_CLASSES.get(self._names[class_id])
            if label is None or score < self.floor(label):
                continue
            out.append(Detection(label, round(float(score), 3), tuple(round(float(v), 1) for v in box)))
        out.sort(key=lambda d: -d.confidence)
        return out


def fuse_class(looks: list[list[Detection]], method: str) -> list[Detection]:
    """One class's boxes from several looks (one list per look) as one list of objects. Boxes that
    overlap by IoU > FUSION_IOU are one object (greedy, highest confidence first; a look adds at
    most its best box to an object). max: the object is its most confident box (a union of the
    looks). wbf (weighted box fusion, Solovyev et al. 2021): the box is the confidence-weighted mean
    of its boxes and the confidence their sum over the number of looks, so an object only one look
    saw counts half with two looks. Thresholds apply to the result."""
    boxes = sorted(((d, i) for i, look in enumerate(looks) for d in look), key=lambda item: -item[0].confidence)
    clusters: list[list[tuple[Detection, int]]] = []
    for detection, look in boxes:
        for cluster in clusters:
            if all(member_look != look for _, member_look in cluster) and iou(cluster[0][0].box, detection.box) > FUSION_IOU:
                cluster.append((detection, look))
                break
        else:
            clusters.append([(detection, look)])
    out = []
    for cluster in clusters:
        best = cluster[0][0]
        if method == "max":
            out.append(best)
            continue
        total = sum(d.confidence for d, _ in cluster)
        box = tuple(round(sum(d.box[k] * d.confidence for d, _ in cluster) / total, 1) for k in range(4))
        out.append(Detection(best.label, round(total / len(looks), 3), box, source=best.source))
    return out


def iou(a, b) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
