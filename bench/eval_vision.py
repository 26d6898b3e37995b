"""`make eval`: accuracy of face, gaze, head pose and object detection on the labelled fixtures.

Prints a table per signal and writes it, with the command, to docs/ACCURACY.md.

    python bench/eval_vision.py [--weights PATH] [--image-size 640] [--stride 4] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from risk.gaze import raw_gaze  # noqa: E402
from settings import AppConfig, GazeConfig, load_args  # noqa: E402
from vision.evaluation import evaluate, evaluate_identity  # noqa: E402


def fmt(share: dict) -> str:
    if not share["total"]:
        return "-"
    return f"{share['hits']}/{share['total']} ({100 * share['rate']:.0f}%)"


def render(result: dict, command: str, gaze_cfg: GazeConfig) -> str:
    m = result["metrics"]
    lines = [
        "# Vision accuracy on the development fixtures",
        "",
        f"Produced by `{command}` on {platform.machine()} ({os.cpu_count()} cores). Fixtures:",
        "`$PROCTOR_TEST_FIXTURES/images` (27 labelled photos) and every "
        f"{result['config']['video_stride']}th frame of the clips in `videos/`; `holdout/` is never used.",
        f"Detector: `{result['config']['weights']}` on {result['config']['backend']} "
        f"({result['config']['precision']}) at "
        f"{result['config']['image_size']} px; second look at "
        f"{result['config']['second_look_image_size']} px. Thresholds: `config/serve.yaml`.",
        "",
        "| signal | measure | result |",
        "|---|---|---|",
        f"| faces | count within the labelled range | {fmt(m['faces_within_range'])} |",
        f"| faces | exact count (photos labelled with one number) | {fmt(m['faces_exact'])} |",
        f"| faces | photos labelled [0, 0] with a face reported (false faces) | {fmt(m['false_faces_on_empty'])} |",
        f"| faces | within range, glasses | {fmt(m['faces_within_range_glasses'])} |",
        f"| faces | within range, low light (real and synthetic) | {fmt(m['faces_within_range_low_light'])} |",
        f"| gaze | direction on labelled photos | {fmt(m['gaze_photos'])} |",
    ]
    for title, share in m["video_gaze"].items():
        kind = "head pose" if "head not turned" in title else "gaze"
        lines.append(f"| {kind} | {title} | {fmt(share)} |")
    lines += [
        f"| head pose | head-turned label right (photos labelled head_turned) | {fmt(m['head_turned_photos'])} |",
        f"| phone | recall, one pass | {fmt(m['phone_recall_plain'])} |",
        f"| phone | false positives, one pass | {fmt(m['phone_false_positive_plain'])} |",
        f"| phone | recall, with second look | {fmt(m['phone_recall_second_look'])} |",
        f"| phone | false positives, with second look | {fmt(m['phone_false_positive_second_look'])} |",
        f"| book | recall | {fmt(m['book_recall_plain'])} |",
        f"| book | false positives | {fmt(m['book_false_positive_plain'])} |",
        f"| persons | at least the labelled minimum, none on empty scenes | {fmt(m['person_count'])} |",
        "",
        "Per-stage cost, median ms per photo on this machine:",
        "",
        "| stage | ms |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in result["stage_ms_median"].items()]
    lines += ["", "Misses (photo: what was wrong):", ""]
    for row in result["rows"]:
        label, face = row["label"], row["face"]
        problems = []
        if not label["faces"][0] <= face.faces <= label["faces"][1]:
            problems.append(f"faces {face.faces} not in {label['faces']}")
        gaze = raw_gaze(face, gaze_cfg)
        if "gaze" in label and gaze != label["gaze"]:
            problems.append(f"gaze {gaze} != {label['gaze']}")
        for key, name in (("phone", "cell phone"), ("book", "book")):
            plain = any(d.label == name for d in row["plain"])
            looked = any(d.label == name for d in row["second_look"])
            if label[key] and not plain:
                problems.append(f"{key} missed" + (" (found by second look)" if looked else ""))
            if not label[key] and (plain or looked):
                problems.append(f"false {key}" + ("" if plain else " (second look only)"))
        if problems:
            lines.append(f"- `{row['name']}`: " + "; ".join(problems))
    return "\n".join(lines) + "\n"


def render_identity(result: dict) -> str:
    """The identity section: every same- and different-person pair of the development fixtures."""
    def dist(row: list | None) -> str:
        return "-" if not row else f"{row[0]} / {row[1]} / {row[2]}"

    bands = result["bands"]
    lines = ["", "## Identity (face descriptors: dlib ResNet, aligned from the MediaPipe face box)", "",
             f"{result['readable']} readable faces of {result['people']} people (one-face photos and every 24th frame "
             "of the webcam clips; who is who: `vision.evaluation.IDENTITY_GROUPS`), every pair compared. Bands "
             f"(`risk.identity`): match <= {bands['match_max_distance']}, mismatch > {bands['mismatch_min_distance']}, "
             f"uncertain between. Median {result['ms_per_descriptor_median']} ms per descriptor on this machine.", "",
             "| pairs | same-person pairs | distance min / median / max | FRR (called mismatch) | uncertain | "
             "different-person pairs | distance min / median / max | FAR (called match) | uncertain |",
             "|---|---|---|---|---|---|---|---|---|"]
    for title, key in (("all", "all"), ("with a low-light photo", "low_light"), ("with a glasses photo", "glasses")):
        r = result[key]
        lines.append(f"| {title} | {r['same_pairs']} | {dist(r['same_distance'])} | {fmt(r['frr'])} | "
                     f"{fmt(r['same_uncertain'])} | {r['different_pairs']} | {dist(r['different_distance'])} | "
                     f"{fmt(r['far'])} | {fmt(r['different_uncertain'])} |")
    lines += ["", "Faces the quality gates refused (\"can't tell\", never \"someone else\"): "
              + (", ".join(f"`{name}` ({reason})" for name, reason in result["unreadable"]) or "none") + ".",
              "Closest different people: " + "; ".join(f"`{a}` / `{b}` {d}" for a, b, d in result["closest_different"])
              + ". Farthest same person: " + "; ".join(f"`{a}` / `{b}` {d}" for a, b, d in result["farthest_same"]) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_weights = Path(os.environ.get("PROCTOR_TEST_MODELS", ROOT.parent / "shared" / "models")) / "yolov8n_coco_dequant.pt"
    parser.add_argument("--weights", default=str(default_weights))
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--backend", choices=["onnxruntime", "torch", "ultralytics"], default=None)
    parser.add_argument("--precision", choices=["auto", "fp32", "int8"], default=None)
    parser.add_argument("--second-look-size", type=int, default=None)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    opts = parser.parse_args()

    fixtures = Path(os.environ.get("PROCTOR_TEST_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    cfg = AppConfig(**load_args())
    detector_cfg = cfg.detector.model_copy(update={"weights": opts.weights}, deep=True)
    if opts.image_size:
        detector_cfg.image_size = opts.image_size
    if opts.backend:
        detector_cfg.backend = opts.backend
    if opts.precision:
        detector_cfg.precision = opts.precision
    if opts.second_look_size:
        detector_cfg.second_look.image_size = opts.second_look_size
    result = evaluate(fixtures, detector_cfg, cfg.face_gaze, cfg.risk.gaze, opts.stride,
                      cfg.risk.head_yaw_limit_deg, cfg.risk.head_pitch_limit_deg)
    command = "make eval" if len(sys.argv) == 1 else "python bench/eval_vision.py " + " ".join(sys.argv[1:])
    text = render(result, command, cfg.risk.gaze) + render_identity(
        evaluate_identity(fixtures, cfg.risk.identity, cfg.face_gaze))
    print(text)
    if not opts.no_write:
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "ACCURACY.md").write_text(text)


if __name__ == "__main__":
    main()
