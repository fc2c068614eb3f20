"""Chair families: one function per family, drawing its parameters and placing its parts.

Each family function takes a ``Sampler`` (named, seeded parameters) and a ``Builder`` (the parts) and
adds one chair to the builder; ``BUILDERS`` maps a family name to its function. Adding a family is one
function here plus one entry in ``BUILDERS`` and ``FAMILIES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from shapelatent.data.procedural_parts import DISC_SECTIONS, LEG_SECTIONS, Builder, Sampler, rot_x, translate

__all__ = ["BUILDERS", "FAMILIES"]

FAMILIES: tuple[str, ...] = ("four_legged", "stool", "armchair", "office", "bench", "sofa")


def _four_legged(s: Sampler, b: Builder) -> None:
    width, depth = s.uniform("seat_width", 0.38, 0.52), s.uniform("seat_depth", 0.36, 0.50)
    thick, height = s.uniform("seat_thickness", 0.025, 0.06), s.uniform("seat_height", 0.42, 0.50)
    front = s.uniform("seat_front_scale", 1.0, 1.15)
    rounded = s.flag("seat_rounded", 0.5)
    shape, lt = s.choice("leg_shape", ("round", "square")), s.uniform("leg_thickness", 0.025, 0.05)
    splay, taper = s.uniform("leg_splay", 0.0, 0.05), s.uniform("leg_taper", 0.6, 1.0)
    inset = s.uniform("leg_inset", 0.005, 0.03)
    b.box((0, height - thick / 2, 0), (width, thick, depth), bevel=0.4 * thick if rounded else 0.0, front_scale=front)
    x, z, y0 = width / 2 - inset - lt / 2, depth / 2 - inset - lt / 2, height - thick
    tops = np.array([(sx * x * (front if sz > 0 else 1.0), y0, sz * z) for sz in (1, -1) for sx in (-1, 1)])
    feet = tops * (1.0, 0.0, 1.0) + np.sign(tops) * (splay, 0.0, splay)  # (4, 3), legs splay outwards
    for top, foot in zip(tops, feet, strict=True):
        b.leg(shape, top, foot, lt, taper)
    if s.flag("stretchers", 0.5):
        style, sy = s.choice("stretcher_style", ("box", "h")), s.uniform("stretcher_height", 0.08, 0.25)
        at = tops + (feet - tops) * (1 - sy / y0)  # (4, 3) where the legs cross height sy
        pairs = [(0, 2), (1, 3)] + ([(0, 1), (2, 3)] if style == "box" else [])
        for i, j in pairs:
            b.rod(at[i], at[j], 0.3 * lt)
        if style == "h":
            b.rod((at[0] + at[2]) / 2, (at[1] + at[3]) / 2, 0.3 * lt)
    style = s.choice("back_style", ("panel", "slats_vertical", "slats_horizontal"))
    back_h, tilt = s.uniform("back_height", 0.30, 0.55), s.uniform("back_tilt_deg", 0.0, 18.0)
    bt = s.uniform("back_thickness", 0.018, 0.04)
    s.set("has_back", 1)
    frame = translate(0.0, height, -z) @ rot_x(-tilt)
    for sx in (-1, 1):  # back posts continue the rear legs
        b.leg(shape, (sx * x, -thick, 0.0), (sx * x, back_h, 0.0), lt, frame=frame)
    inner = 2 * x - lt
    if style == "panel":
        panel_h = s.uniform("panel_fraction", 0.35, 0.95) * back_h
        b.box((0, back_h - panel_h / 2, 0), (inner + 0.01, panel_h, bt), frame=frame, bevel=0.3 * bt)
        return
    rail_h = s.uniform("top_rail_height", 0.04, 0.10)
    b.box((0, back_h - rail_h / 2, 0), (inner + lt, rail_h, bt), frame=frame, bevel=0.3 * bt)
    if style == "slats_vertical":
        n, low = s.integer("n_slats", 3, 7), s.uniform("bottom_rail_y", 0.06, 0.14)
        b.box((0, low, 0), (inner, 0.03, bt * 0.9), frame=frame)
        slat_w = min(0.06, 0.55 * inner / n)
        for xs in np.linspace(-inner / 2, inner / 2, n + 2)[1:-1]:
            b.box((xs, (low + back_h - rail_h) / 2, 0), (slat_w, back_h - rail_h - low, 0.7 * bt), frame=frame)
    else:
        n = s.integer("n_slats", 2, 5)
        slat_h = s.uniform("slat_height", 0.03, 0.07)
        for ys in np.linspace(back_h - rail_h, 0.35 * back_h, n + 1)[1:]:
            b.box((0, ys, 0), (inner, slat_h, bt * 0.8), frame=frame, bevel=0.2 * bt)


def _stool(s: Sampler, b: Builder) -> None:
    shape, r = s.choice("seat_shape", ("round", "square")), s.uniform("seat_radius", 0.15, 0.22)
    thick, height = s.uniform("seat_thickness", 0.03, 0.07), s.uniform("seat_height", 0.42, 0.80)
    n_legs = s.integer("n_legs", 3, 4) if shape == "round" else 4
    s.set("n_legs", n_legs)
    leg_shape = s.choice("leg_shape", ("round", "square"))
    lt, splay = s.uniform("leg_thickness", 0.022, 0.04), s.uniform("leg_splay", 0.02, 0.12)
    if shape == "round":
        b.rod((0, height - thick, 0), (0, height, 0), r, sections=2 * DISC_SECTIONS)
    else:
        b.box((0, height - thick / 2, 0), (1.8 * r, thick, 1.8 * r), bevel=0.3 * thick)
    # three legs put one at the back; four legs sit on the diagonals
    angles = np.radians(180.0 + 360.0 * np.arange(n_legs) / n_legs + (45.0 if n_legs == 4 else 0.0))
    r_top = 0.72 * r * (1.15 if shape == "square" and n_legs == 4 else 1.0)
    y0 = height - thick
    dirs = np.column_stack((np.sin(angles), np.zeros(n_legs), np.cos(angles)))
    tops, feet = dirs * r_top + (0, y0, 0), dirs * (r_top + splay)
    for top, foot in zip(tops, feet, strict=True):
        b.leg(leg_shape, top, foot, lt, 0.8)
    if s.flag("apron", 0.4):  # a skirt under the seat, joining the leg tops
        if shape == "round":
            b.rod((0, y0 - 0.04, 0), (0, y0, 0), r_top + 0.3 * lt, sections=2 * DISC_SECTIONS)
        else:
            side = math.sqrt(2) * r_top + 0.6 * lt
            b.box((0, y0 - 0.02, 0), (side, 0.04, side))
    footrest = s.choice("footrest", ("none", "ring", "bars")) if height > 0.58 else "none"
    s.set("footrest", footrest)
    if footrest != "none":
        fy = height * s.uniform("footrest_fraction", 0.30, 0.45)
        at = tops + (feet - tops) * (1 - fy / y0)
        if footrest == "ring":
            b.ring(fy, r_top + splay * (1 - fy / y0), 0.4 * lt)
        else:
            for i in range(n_legs):
                b.rod(at[i], at[(i + 1) % n_legs], 0.35 * lt)
    if not s.flag("has_back", 0.35):
        return
    back_h, tilt = s.uniform("back_height", 0.12, 0.30), s.uniform("back_tilt_deg", 0.0, 15.0)
    band = min(back_h * 0.8, s.uniform("back_band_height", 0.06, 0.14))
    s.set("back_band_height", band)
    frame = translate(0.0, height, -0.9 * r) @ rot_x(-tilt) @ translate(0.0, 0.0, 0.9 * r)
    for a in np.radians((-35.0, 35.0)):
        p = (0.85 * r * math.sin(a), 0.0, -0.85 * r * math.cos(a))
        b.rod(np.add(p, (0, -thick, 0)), np.add(p, (0, back_h - band / 2, 0)), 0.35 * lt, frame=frame)
    if shape == "round":
        arcs = np.radians(np.linspace(-55.0, 55.0, 8))
        for a0, a1 in zip(arcs[:-1], arcs[1:], strict=True):
            p0 = (0.87 * r * math.sin(a0), back_h - band / 2, -0.87 * r * math.cos(a0))
            p1 = (0.87 * r * math.sin(a1), back_h - band / 2, -0.87 * r * math.cos(a1))
            b.bar(p0, p1, 0.02, band, hint=(0, -1, 0), frame=frame)
    else:
        b.box((0, back_h - band / 2, -0.85 * r), (1.6 * r, band, 0.025), frame=frame, bevel=0.008)


def _upholstered(s: Sampler, b: Builder, sofa: bool) -> None:
    """Armchairs and sofas: a box frame, seat cushions, arms both sides and a thick back."""
    if sofa:
        width, depth = s.uniform("seat_width", 1.2, 2.2), s.uniform("seat_depth", 0.55, 0.70)
    else:
        width, depth = s.uniform("seat_width", 0.50, 0.70), s.uniform("seat_depth", 0.50, 0.65)
    height, ct = s.uniform("seat_height", 0.38, 0.46), s.uniform("cushion_thickness", 0.10, 0.18)
    n_cushions = s.integer("n_seat_cushions", 1, 3) if sofa else 1
    s.set("n_seat_cushions", n_cushions)
    aw, ah = s.uniform("arm_width", 0.08, 0.22), s.uniform("arm_height", 0.12, 0.26)
    arm_style = s.choice("arm_style", ("box", "rolled"))
    bt = s.uniform("back_thickness", 0.12, 0.22)
    back_h = max(s.uniform("back_height", 0.25 if sofa else 0.35, 0.45 if sofa else 0.60), ah + 0.1)
    s.set("back_height", back_h)
    tilt = s.uniform("back_tilt_deg", 0.0 if sofa else 4.0, 8.0 if sofa else 15.0)
    base = s.choice("base", ("legs", "solid"))
    leg_h = s.uniform("leg_height", 0.04, 0.16) if base == "legs" else 0.0
    s.set("has_back", 1)
    full_w, z_front, z_back = width + 2 * aw, depth / 2, -depth / 2 - bt
    frame_top = height - ct
    b.box(
        (0, (leg_h + frame_top) / 2, (z_front + z_back) / 2), (full_w, frame_top - leg_h, z_front - z_back), bevel=0.02
    )
    gap = 0.006
    cw = (width - gap * (n_cushions - 1)) / n_cushions
    for i in range(n_cushions):
        b.box((-width / 2 + cw / 2 + i * (cw + gap), height - ct / 2, 0.0), (cw, ct, depth), bevel=0.3 * ct)
    roll = aw / 2 if arm_style == "rolled" else 0.0
    for sx in (-1, 1):
        cx = sx * (width / 2 + aw / 2)
        top = height + ah - roll
        b.box(
            (cx, (leg_h + top) / 2, (z_front + z_back) / 2 + 0.01),
            (aw, top - leg_h, z_front - z_back - 0.02),
            bevel=min(0.04, 0.3 * aw),
        )
        if roll:
            b.rod((cx, top, z_back + 0.02), (cx, top, z_front + 0.015), 0.55 * aw, sections=DISC_SECTIONS)
    frame = translate(0.0, frame_top, -depth / 2) @ rot_x(-tilt)
    b.box((0, (back_h + ct) / 2, -bt / 2), (full_w - 0.01, back_h + ct, bt), frame=frame, bevel=0.04)
    if s.flag("back_cushions", 0.7 if sofa else 0.5):
        lean = s.uniform("back_cushion_tilt_deg", 5.0, 15.0)
        bct = s.uniform("back_cushion_thickness", 0.08, 0.16)
        lean_frame = translate(0.0, height, -depth / 2) @ rot_x(-lean)
        bh = 0.85 * back_h
        for i in range(n_cushions):
            b.box(
                (-width / 2 + cw / 2 + i * (cw + gap), bh / 2, bct / 2),
                (cw, bh, bct),
                frame=lean_frame,
                bevel=0.3 * bct,
            )
    if base == "legs":
        shape, lt = s.choice("leg_shape", ("round", "square")), s.uniform("leg_thickness", 0.03, 0.06)
        xs = [-full_w / 2 + 0.04, full_w / 2 - 0.04] + ([0.0] if sofa and width > 1.6 else [])
        for x in xs:
            for z in (z_front - 0.04, z_back + 0.04):
                b.leg(shape, (x, leg_h + 0.01, z), (x, 0.0, z), lt, 0.7)
    else:
        b.box((0, 0.015, (z_front + z_back) / 2), (full_w - 0.04, 0.03, z_front - z_back - 0.04))


def _armchair(s: Sampler, b: Builder) -> None:
    _upholstered(s, b, sofa=False)


def _sofa(s: Sampler, b: Builder) -> None:
    _upholstered(s, b, sofa=True)


def _office(s: Sampler, b: Builder) -> None:
    width, depth = s.uniform("seat_width", 0.44, 0.54), s.uniform("seat_depth", 0.42, 0.50)
    ct, height = s.uniform("seat_thickness", 0.06, 0.10), s.uniform("seat_height", 0.42, 0.54)
    base_r, caster = s.uniform("base_radius", 0.26, 0.34), s.uniform("caster_radius", 0.022, 0.032)
    hub_r, gas_r = s.uniform("hub_radius", 0.035, 0.055), s.uniform("gas_cylinder_radius", 0.018, 0.03)
    spin = s.uniform("base_rotation_deg", 0.0, 72.0)
    s.set("n_spokes", 5)
    s.set("has_back", 1)
    spoke_y = 2 * caster + 0.025
    b.rod((0, spoke_y - 0.02, 0), (0, spoke_y + 0.05, 0), hub_r, taper=0.8, sections=DISC_SECTIONS)
    for a in np.radians(spin + 72.0 * np.arange(5)):
        d = np.array([math.sin(a), 0.0, math.cos(a)])
        end = d * base_r + (0, spoke_y, 0)
        b.bar(d * hub_r * 0.5 + (0, spoke_y + 0.02, 0), end, 0.045, 0.03, taper=0.8, hint=(0, 1, 0))
        b.rod(end, end - (0, spoke_y - 1.6 * caster, 0), 0.008)
        wheel = d * base_r + (0, caster, 0)
        tangent = np.array([d[2], 0.0, -d[0]]) * 0.012
        b.rod(wheel - tangent, wheel + tangent, caster, sections=LEG_SECTIONS)
    mech_y = height - ct - 0.05
    b.rod((0, spoke_y + 0.05, 0), (0, mech_y, 0), gas_r, taper=0.75)
    b.box((0, mech_y + 0.025, -0.02), (0.2, 0.05, 0.24))
    b.box((0, height - ct / 2, 0), (width, ct, depth), bevel=0.35 * ct, front_scale=1.03)
    bw, back_h = s.uniform("back_width", 0.36, 0.50), s.uniform("back_height", 0.40, 0.70)
    tilt, bt = s.uniform("back_tilt_deg", 5.0, 20.0), s.uniform("back_thickness", 0.04, 0.08)
    gap = s.uniform("back_gap", 0.04, 0.12)
    frame = translate(0.0, mech_y, -depth / 2 - 0.02 - bt / 2) @ rot_x(-tilt)
    b.bar((0, 0.025, depth / 2 - 0.05), (0, 0.025, 0), 0.06, 0.02, hint=(0, 1, 0), frame=frame)
    b.bar((0, 0.015, 0), (0, ct + gap + 0.5 * back_h, -0.6 * bt), 0.06, 0.02, hint=(1, 0, 0), frame=frame)
    b.box((0, ct + 0.05 + gap + back_h / 2, 0), (bw, back_h, bt), frame=frame, bevel=0.4 * bt)
    if s.flag("headrest", 0.25):
        top = ct + 0.05 + gap + back_h
        b.bar((0, top - 0.05, -0.6 * bt), (0, top + 0.08, -0.6 * bt), 0.03, 0.015, frame=frame)
        b.box((0, top + 0.12, 0.01), (0.6 * bw, 0.11, 0.07), frame=frame, bevel=0.025)
    if s.flag("has_arms", 0.6):
        arm_h, arm_x = s.uniform("arm_height", 0.18, 0.26), width / 2 + 0.03
        for sx in (-1, 1):
            b.bar((sx * 0.08, mech_y + 0.01, -0.06), (sx * arm_x, mech_y + 0.01, -0.06), 0.04, 0.02, hint=(0, 1, 0))
            b.bar((sx * arm_x, mech_y, -0.06), (sx * arm_x, height + arm_h, -0.06), 0.03, 0.05)
            b.box((sx * arm_x, height + arm_h + 0.015, -0.03), (0.07, 0.03, 0.26), bevel=0.012)


def _bench(s: Sampler, b: Builder) -> None:
    length, depth = s.uniform("seat_length", 0.9, 1.8), s.uniform("seat_depth", 0.30, 0.45)
    thick, height = s.uniform("seat_thickness", 0.03, 0.07), s.uniform("seat_height", 0.40, 0.48)
    seat_style, support = s.choice("seat_style", ("solid", "slats")), s.choice("support", ("legs", "panels"))
    y0 = height - thick
    if seat_style == "solid":
        b.box((0, height - thick / 2, 0), (length, thick, depth), bevel=0.3 * thick)
    else:
        n = s.integer("n_planks", 3, 5)
        pw = depth / n * 0.85
        for z in np.linspace(-depth / 2 + pw / 2, depth / 2 - pw / 2, n):
            b.box((0, height - thick / 2, z), (length, thick, pw), bevel=0.25 * thick)
        b.box((0, y0 - 0.02, 0), (length * 0.96, 0.04, depth * 0.9))  # rails under the planks
    inset = s.uniform("support_inset", 0.03, 0.15)
    if support == "legs":
        shape, lt = s.choice("leg_shape", ("round", "square")), s.uniform("leg_thickness", 0.03, 0.06)
        splay = s.uniform("leg_splay", 0.0, 0.04)
        xs = [-1.0, 1.0] + ([0.0] if length > 1.3 else [])
        post_x = [x * (length / 2 - inset) for x in xs]
        for x in post_x:
            for sz in (-1, 1):
                z = sz * (depth / 2 - 0.03 - lt / 2)
                b.leg(shape, (x, y0, z), (x + np.sign(x) * splay, 0.0, z + sz * splay), lt, 0.85)
    else:
        pt = s.uniform("panel_thickness", 0.03, 0.06)
        post_x = [-(length / 2 - inset), length / 2 - inset]
        for x in post_x:
            b.box((x, y0 / 2, 0), (pt, y0, depth * 0.9))
        if s.flag("stretcher", 0.5):
            b.box((0, 0.55 * y0, 0), (2 * (length / 2 - inset), 0.06, 0.025))
    if not s.flag("has_back", 0.5):
        return
    back_h, tilt = s.uniform("back_height", 0.25, 0.45), s.uniform("back_tilt_deg", 5.0, 15.0)
    frame = translate(0.0, height, -depth / 2 + 0.02) @ rot_x(-tilt)
    for x in post_x:
        b.bar((x, -thick, 0), (x, back_h, 0), 0.04, 0.035, frame=frame)
    if s.choice("back_style", ("panel", "planks")) == "panel":
        b.box((0, back_h * 0.62, 0.025), (length, back_h * 0.7, 0.025), frame=frame, bevel=0.008)
    else:
        n = s.integer("n_back_planks", 2, 4)
        ph = back_h * 0.7 / n * 0.7
        for y in np.linspace(back_h - ph / 2, back_h * 0.3 + ph / 2, n):
            b.box((0, y, 0.025), (length, ph, 0.025), frame=frame, bevel=0.008)


BUILDERS: dict[str, Callable[[Sampler, Builder], None]] = {
    "four_legged": _four_legged,
    "stool": _stool,
    "armchair": _armchair,
    "office": _office,
    "bench": _bench,
    "sofa": _sofa,
}
