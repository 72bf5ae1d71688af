"""Draws a preview (rows of captioned tiles with grids, boxes and highlights) for any method.

The engine describes a pretext batch as rows of tiles (``engine.pretext.tiles.PreviewTile``, sent
here as plain dicts); this view draws whatever arrives, so a new method's preview needs no GUI
change. Rows are laid out as blocks that flow into as many columns as the width allows; with ``fit`` the tiles
take the size that fills the space shown (:meth:`TileView.best_px`). Captions wrap between words, never inside
one (``app.preview.model.wrap_words``), and say themselves whole in a tooltip.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from app.common.images import to_qimage
from app.preview.model import wrap_words

GAP = 10
BLOCK_GAP = 22
CAPTION_LINES = 3  # at least this many caption lines are kept free under the tiles
CAPTION_MAX_LINES = 5  # a longer caption ends with "…" (the tooltip says it whole)
FIT_MIN, FIT_MAX = 64, 320  # the tile sizes fitting chooses from


class TileView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.tile_px = 128
        self.rows: list[dict] = []  # [{"title", "tiles": [{"qimage", "caption", "grid", "boxes", "highlight"}]}]
        self.message = "No preview yet."
        self._layout: list[tuple[QRect, dict]] = []
        self._cap_font = QFont(self.font())
        self._cap_font.setPointSizeF(max(7.5, self.font().pointSizeF() * 0.9))
        self._title_font = QFont(self.font())
        self._title_font.setBold(True)
        self._cap_h = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)

    # -- content ---------------------------------------------------------------------------
    def set_result(self, result: dict | None) -> None:
        self.rows = []
        for row in (result or {}).get("rows", []):
            tiles = [dict(t, qimage=to_qimage(t["image"])) for t in row.get("tiles", [])]
            self.rows.append({"title": row.get("title", ""), "tiles": tiles})
        self.message = "" if self.rows else "The method shows no preview."
        self.relayout()

    def set_message(self, text: str) -> None:
        self.message = text
        if not self.rows:
            self.relayout()
        self.update()

    def set_tile_px(self, px: int) -> None:
        self.tile_px = int(px)
        self.relayout()

    def tile_count(self) -> int:
        return sum(len(r["tiles"]) for r in self.rows)

    # -- geometry --------------------------------------------------------------------------
    def caption_lines(self, text: str, px: int | None = None) -> list[str]:
        """A caption's lines under a tile of ``px`` pixels (the tile size by default)."""
        fm = QFontMetrics(self._cap_font)
        return wrap_words(text, (px or self.tile_px) + 4, fm.horizontalAdvance, CAPTION_MAX_LINES)

    def _caption_h(self, px: int | None = None) -> int:
        need = max((len(self.caption_lines(t.get("caption", ""), px)) for r in self.rows for t in r["tiles"]),
                   default=0)
        return QFontMetrics(self._cap_font).lineSpacing() * max(CAPTION_LINES, need) + 4

    def _title_h(self) -> int:
        return QFontMetrics(self._title_font).lineSpacing() + 4

    def block_size(self, px: int | None = None) -> QSize:
        px = px or self.tile_px
        n = max((len(r["tiles"]) for r in self.rows), default=1)
        return QSize(n * px + (n - 1) * GAP, self._title_h() + px + self._caption_h(px))

    def best_px(self, width: int, height: int) -> int:
        """The largest tile size (``FIT_MIN`` to ``FIT_MAX``) whose blocks fit ``width`` x ``height`` without
        scrolling (``FIT_MIN`` when none does)."""
        if not self.rows:
            return self.tile_px
        for px in range(FIT_MAX, FIT_MIN - 1, -4):
            bs = self.block_size(px)
            if bs.width() + 2 * GAP > width:
                continue
            cols = max(1, (width - GAP + BLOCK_GAP) // (bs.width() + BLOCK_GAP))
            rows = (len(self.rows) + cols - 1) // cols
            if GAP + rows * (bs.height() + GAP) <= height:
                return px
        return FIT_MIN

    def tile_at(self, pos) -> dict | None:
        """The tile (and its caption) under a point of the widget."""
        for rect, row in self._layout:
            if not rect.contains(pos):
                continue
            y0 = rect.y() + self._title_h()
            for j, tile in enumerate(row["tiles"]):
                x = rect.x() + j * (self.tile_px + GAP)
                if QRect(x, y0, self.tile_px, rect.height() - self._title_h()).contains(pos):
                    return tile
        return None

    def event(self, ev) -> bool:  # noqa: D102
        if ev.type() == QEvent.Type.ToolTip:
            tile = self.tile_at(ev.pos())
            if tile and tile.get("caption"):
                QToolTip.showText(ev.globalPos(), tile["caption"], self)
            else:
                QToolTip.hideText()
            return True
        return super().event(ev)

    def relayout(self) -> None:
        self._layout = []
        if not self.rows:
            self.setMinimumSize(200, 120)
            self.update()
            return
        bs = self.block_size()
        self._cap_h = self._caption_h()
        avail = max(self.width(), bs.width() + 2 * GAP)
        cols = max(1, (avail - GAP + BLOCK_GAP) // (bs.width() + BLOCK_GAP))
        for k, row in enumerate(self.rows):
            c, r = k % cols, k // cols
            x = GAP + c * (bs.width() + BLOCK_GAP)
            y = GAP + r * (bs.height() + GAP)
            self._layout.append((QRect(x, y, bs.width(), bs.height()), row))
        nrows = (len(self.rows) + cols - 1) // cols
        self.setMinimumSize(bs.width() + 2 * GAP, GAP + nrows * (bs.height() + GAP))
        self.update()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        old = [r for r, _ in self._layout]
        self.relayout()
        if old != [r for r, _ in self._layout]:
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        return self.minimumSize()

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().base())
        if not self.rows:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.message)
            return
        for rect, row in self._layout:
            if not rect.intersects(event.rect()):
                continue
            p.setFont(self._title_font)
            p.setPen(self.palette().text().color())
            p.drawText(QRect(rect.x(), rect.y(), rect.width(), self._title_h()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, row["title"])
            y = rect.y() + self._title_h()
            for j, tile in enumerate(row["tiles"]):
                x = rect.x() + j * (self.tile_px + GAP)
                self._paint_tile(p, QRect(x, y, self.tile_px, self.tile_px), tile)
        if self.message:
            p.setPen(QColor("#c0392b"))
            p.drawText(self.rect().adjusted(4, 0, -4, -4), Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft,
                       self.message)

    def _paint_tile(self, p: QPainter, r: QRect, tile: dict) -> None:
        img: QImage = tile["qimage"]
        w, h = img.width(), img.height()
        s = min(r.width() / max(1, w), r.height() / max(1, h))
        dw, dh = w * s, h * s
        target = QRectF(r.x() + (r.width() - dw) / 2, r.y() + (r.height() - dh) / 2, dw, dh)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, s < 1)
        p.drawImage(target, img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        n = int(tile.get("grid") or 0)
        if n > 1:
            for pen in (QPen(QColor(0, 0, 0, 150), 3), QPen(QColor(255, 255, 255, 220), 1)):
                p.setPen(pen)
                for k in range(1, n):
                    gx = target.x() + k * dw / n
                    gy = target.y() + k * dh / n
                    p.drawLine(int(gx), int(target.top()), int(gx), int(target.bottom()))
                    p.drawLine(int(target.left()), int(gy), int(target.right()), int(gy))
        small = QFont(self._cap_font)
        small.setBold(True)
        for box in tile.get("boxes") or []:
            x0, y0, x1, y1 = (float(v) for v in box[:4])
            color = QColor(box[4]) if len(box) > 4 else QColor("#ffd040")
            label = str(box[5]) if len(box) > 5 else ""
            br = QRectF(target.x() + x0 * s, target.y() + y0 * s, (x1 - x0) * s, (y1 - y0) * s)
            p.setPen(QPen(QColor(0, 0, 0, 140), 3))
            p.drawRect(br)
            p.setPen(QPen(color, 2 if self.tile_px >= 96 else 1))
            p.drawRect(br)
            if label and self.tile_px >= 72:
                p.setFont(small)
                fm = QFontMetrics(small)
                lw, lh = fm.horizontalAdvance(label) + 6, fm.height()
                lr = QRectF(br.x() + 1, br.y() + 1, lw, lh)
                p.fillRect(lr, QColor(0, 0, 0, 170))
                p.setPen(color)
                p.drawText(lr, Qt.AlignmentFlag.AlignCenter, label)
        if tile.get("highlight"):
            p.setPen(QPen(QColor("#ff8c00"), 3))
            p.drawRect(target.adjusted(1, 1, -1, -1))
        else:
            p.setPen(QPen(self.palette().mid().color(), 1))
            p.drawRect(target)
        p.setFont(self._cap_font)
        p.setPen(self.palette().text().color())
        lines = self.caption_lines(tile.get("caption", ""))
        cap = QRect(r.x() - 2, r.bottom() + 3, r.width() + 4, self._cap_h - 2)
        p.drawText(cap, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, "\n".join(lines))
