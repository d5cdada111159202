"""Labels that never overlap: each point of a scatter gets its text only where the text can be read.

Labels are placed one at a time, in the order given (the most important first): on the point
itself where `on_point` (a small vocabulary: a letter on its disc), else beside it, else a little
further out with a thin line to it. A place is taken only if the text's box stays inside the axes
and overlaps no label placed before, no obstacle (the legend) and, beside a point, no other point.
A label with no free place is left out: its point stays, unlabelled. Boxes are measured in
display pixels by the renderer, after the figure's layout is done, so what is checked is what
is drawn.
"""

from microgpt.pictures.attention import _numpy

NEAR, FAR = 3.0, 15.0   # points between a point and a label beside it / further out (with a line)
DIRECTIONS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]


def laid_out_renderer(fig):
    """Lay the figure out (constrained layout runs at draw time) and return its renderer: every
    axes' transform is then final and text sizes can be measured."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _candidates(centre):
    """(dx, dy, ha, va, line) offsets in points: the point itself, or the places beside it and
    further out, the nearest first."""
    if centre:
        return [(0.0, 0.0, "center", "center", False)]
    out = []
    for dist, line in ((NEAR, False), (FAR, True)):
        for sx, sy in DIRECTIONS[:4] if dist == NEAR else DIRECTIONS:
            out.append((sx * dist, sy * dist, {1: "left", 0: "center", -1: "right"}[sx],
                        {1: "bottom", 0: "center", -1: "top"}[sy], line))
    return out


def place_labels(ax, renderer, points, labels, colors, order, *, fontsizes=8, on_point=False,
                 point_size=4.0, max_labels=None, obstacles=(), may_cover=()):
    """Annotate points[i] [data coords] with labels[i] for i in `order` until max_labels are placed,
    without overlap (see the module's docstring). fontsizes: one size, or one per label;
    point_size: a point's diameter in points (the area kept clear around other points);
    obstacles: display boxes (x0, y0, x1, y1) to keep clear; may_cover: the indices whose labels
    may cover other points (the special tokens: few, and wanted). -> the indices labelled, in order."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.patheffects import withStroke
    from matplotlib.text import Text
    np = _numpy()
    px = ax.figure.dpi / 72.0                           # pixels per point
    frame = ax.get_window_extent(renderer)
    xy = ax.transData.transform(np.asarray(points, dtype=float))  # [N, 2] pixels
    r = point_size * px / 2
    dots = np.column_stack([xy - r, xy + r])            # [N, 4] x0 y0 x1 y1
    taken = [tuple(b) for b in obstacles]
    sizes = [fontsizes] * len(labels) if isinstance(fontsizes, (int, float)) else list(fontsizes)
    limit = len(order) if max_labels is None else max_labels
    placed, done, may_cover = [], set(), set(may_cover)
    for centre in ((True, False) if on_point else (False,)):  # every label on its point first
        for i in order:
            if len(placed) >= limit:
                return placed
            if i in done:
                continue
            probe = Text(0, 0, labels[i], fontproperties=FontProperties(size=sizes[i], weight="bold"), parse_math=False)
            probe.set_figure(ax.figure)                 # measured as matplotlib lays a label out
            size = probe.get_window_extent(renderer)
            w, h = size.width + 2, size.height + 2      # a pixel of air on each side
            for dx, dy, ha, va, line in _candidates(centre):
                x = xy[i, 0] + dx * px - {"left": 1, "center": w / 2, "right": w - 1}[ha]
                y = xy[i, 1] + dy * px - {"bottom": 1, "center": h / 2, "top": h - 1}[va]
                box = (x, y, x + w, y + h)
                if not (frame.x0 <= x and x + w <= frame.x1 and frame.y0 <= y and y + h <= frame.y1):
                    continue
                if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                    continue
                if (dx or dy) and i not in may_cover:   # beside a point: cover no other point
                    hit = ((dots[:, 0] < box[2]) & (box[0] < dots[:, 2]) & (dots[:, 1] < box[3])
                           & (box[1] < dots[:, 3]))
                    hit[i] = False
                    if hit.any():
                        continue
                text = ax.annotate(labels[i], points[i], xytext=(dx, dy), textcoords="offset points",
                                   ha=ha, va=va, color=colors[i], fontsize=sizes[i], fontweight="bold",
                                   annotation_clip=False, parse_math=False,  # "$" is a token, not mathtext
                                   arrowprops=dict(arrowstyle="-", color=colors[i], lw=0.6, alpha=0.7,
                                                   shrinkA=0, shrinkB=point_size / 2) if line else None)
                if dx or dy:                            # beside its point: a white halo over the dots
                    text.set_path_effects([withStroke(linewidth=2.2, foreground="white", alpha=0.9)])
                text.set_in_layout(False)               # labels never move the panels
                taken.append(box)
                placed.append(i)
                done.add(i)
                break
    return placed
