"""Picture sheets of the benchmarks: rows cut from sample grids, stacked with a label on the left."""


def grid_rows(path, first, count, side, cols=8):
    """Rows ``first``..``first + count`` (of ``side``-pixel images, the first ``cols`` of each) of a picture grid."""
    from PIL import Image

    picture = Image.open(path).convert("RGB")
    return picture.crop((0, first * side, cols * side, (first + count) * side))


def labelled(strips, label_width=84):
    """Stacks (label, picture) strips with the label written in a margin on the left."""
    from PIL import Image, ImageDraw

    width = label_width + max(strip.width for _, strip in strips)
    sheet = Image.new("RGB", (width, sum(strip.height for _, strip in strips)), "white")
    draw, top = ImageDraw.Draw(sheet), 0
    for label, strip in strips:
        sheet.paste(strip, (label_width, top))
        draw.text((4, top + strip.height // 2 - 6), label, fill="black")
        top += strip.height
    return sheet
