"""Batch driver run inside GIMP 3 (`gimp-console-3.0 --batch-interpreter=python-fu-eval`).

Reads /io/cases.json, and for each case opens the content image in GIMP, arranges it (an
offset, a layer above, saved selections as channels, a selection), calls plug-in-nst-stylize
non-interactively like a batch script would, and dumps what the test checks into /io/out: the
layer stack, the source layer's pixels before and after, the new layer's pixels and mask. The
pytest side does the judging; this script raises only when GIMP itself misbehaves, so
gimp-console exits non-zero.
"""

import json
import time
import traceback
from typing import Any

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

IO = "/io"
PROC = "plug-in-nst-stylize"


def fmt(drawable: Any, kind: str) -> str:
    """Babl format covering the drawable's channels (plus alpha when with_alpha)."""
    model = "Y'" if drawable.is_gray() else "R'G'B'"
    return f"{model}{'A' if drawable.has_alpha() else ''} {kind}"


def dump(drawable: Any, path: str, kind: str) -> dict[str, Any]:
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(
        Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt(drawable, kind), Gegl.AbyssPolicy.CLAMP
    )
    with open(path, "wb") as f:
        f.write(bytes(data))
    return {"width": w, "height": h, "format": fmt(drawable, kind), "file": path}


PRECISIONS = {"u8": "U8_NON_LINEAR", "u16": "U16_NON_LINEAR", "f32": "FLOAT_NON_LINEAR"}
KINDS = {"u8": "u8", "u16": "u16", "f32": "float"}
LAYER_TYPES = {1: "GRAY_IMAGE", 2: "GRAYA_IMAGE", 3: "RGB_IMAGE", 4: "RGBA_IMAGE"}


def new_image(content: dict[str, Any]) -> tuple[Any, Any]:
    """An image at the content's precision holding its raw pixels in one layer."""
    w, h, c, dtype = content["width"], content["height"], content["channels"], content["dtype"]
    base = Gimp.ImageBaseType.GRAY if c <= 2 else Gimp.ImageBaseType.RGB
    image = Gimp.Image.new_with_precision(w, h, base, getattr(Gimp.Precision, PRECISIONS[dtype]))
    layer = Gimp.Layer.new(
        image, "source", w, h, getattr(Gimp.ImageType, LAYER_TYPES[c]), 100.0, Gimp.LayerMode.NORMAL
    )
    image.insert_layer(layer, None, 0)
    with open(content["file"], "rb") as f:
        data = f.read()
    model = {1: "Y'", 2: "Y'A", 3: "R'G'B'", 4: "R'G'B'A"}[c]
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), f"{model} {KINDS[dtype]}", data)
    buf.flush()
    return image, layer


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    out = f"{IO}/out/{case['name']}"
    kind = KINDS[case["content"]["dtype"]]
    image, source = new_image(case["content"])
    ox, oy = case.get("offset", [0, 0])
    if ox or oy:  # grow the canvas so the layer sits at (ox, oy)
        image.resize(image.get_width() + ox, image.get_height() + oy, ox, oy)
    top = Gimp.Layer.new(image, "top", 8, 8, source.type_with_alpha(), 100.0, Gimp.LayerMode.NORMAL)
    image.insert_layer(top, None, 0)
    for channel in case.get("channels", []):  # a rectangle of the layer, saved as a channel
        x, y, w, h = channel["rect"]
        Gimp.Selection.none(image)
        if w and h:  # else a channel of nothing
            image.select_rectangle(Gimp.ChannelOps.REPLACE, ox + x, oy + y, w, h)
        Gimp.Selection.save(image).set_name(channel["name"])
        Gimp.Selection.none(image)
    sel = case.get("selection")
    if sel:
        image.select_ellipse(Gimp.ChannelOps.REPLACE, *sel)
    image.set_selected_layers([source])
    before = dump(source, f"{out}_source_before.raw", kind)

    proc = Gimp.get_pdb().lookup_procedure(PROC)
    if proc is None:
        raise RuntimeError(f"{PROC} is not registered: the plug-in failed to load")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", image)
    cfg.set_core_object_array("drawables", [source])
    if case["style"] is not None:  # none: the argument keeps its default, no file
        cfg.set_property("style-file", Gio.File.new_for_path(case["style"]))
    for name, value in case.get("args", {}).items():
        cfg.set_property(name, value)
    for name, path in case.get("files", {}).items():  # file arguments (styles 2 and 3)
        cfg.set_property(name, Gio.File.new_for_path(path))
    for name, channel in case.get("channel_args", {}).items():  # channel arguments, by name
        cfg.set_property(name, image.get_channel_by_name(channel))
    started = time.monotonic()
    rv = proc.run(cfg)
    elapsed = time.monotonic() - started
    status = rv.index(0)
    result = {"name": case["name"], "status": status.value_nick, "seconds": elapsed}
    if status != Gimp.PDBStatusType.SUCCESS:
        result["error"] = Gimp.get_pdb().get_last_error()
        image.delete()
        return result
    layer = rv.index(1)
    result["source_before"] = before
    result["source_after"] = dump(source, f"{out}_source_after.raw", kind)
    result["layers"] = [ly.get_name() for ly in image.get_layers()]
    result["source_offsets"] = list(source.get_offsets()[1:])
    result["new"] = {
        "name": layer.get_name(),
        "offsets": list(layer.get_offsets()[1:]),
        "is_gray": layer.is_gray(),
        "has_alpha": layer.has_alpha(),
        **dump(layer, f"{out}_new.raw", kind),
    }
    mask = layer.get_mask()
    if mask is not None:
        result["mask"] = dump(mask, f"{out}_mask.raw", "u8")
    image.delete()
    return result


def main() -> None:
    with open(f"{IO}/cases.json") as f:
        cases = json.load(f)
    results = []
    for case in cases:
        try:
            results.append(run_case(case))
        except Exception:  # recorded for the test to report, then go on with the next case
            results.append(
                {
                    "name": case["name"],
                    "status": "driver-exception",
                    "error": traceback.format_exc(),
                }
            )
        with open(f"{IO}/out/results.json", "w") as f:
            json.dump(results, f, indent=1)


main()
