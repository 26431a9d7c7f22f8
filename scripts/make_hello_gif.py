"""Draw the home page's animated GIF (src/userhub/static/hello-flask.gif).

Our own picture for the tutorial's "image from /static/": a lab flask whose liquid bubbles.
Needs Pillow (not a runtime dependency): ``pip install pillow && python scripts/make_hello_gif.py``.
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 160
FRAMES = 12
OUT = Path(__file__).resolve().parents[1] / "src" / "userhub" / "static" / "hello-flask.gif"


def frame(step: int) -> Image.Image:
    image = Image.new("P", (SIZE, SIZE), 0)
    image.putpalette(
        [247, 249, 251, 31, 41, 51, 23, 105, 170, 120, 190, 240, 255, 255, 255]
        + [0] * (256 * 3 - 15)
    )
    draw = ImageDraw.Draw(image)
    # The flask: a neck and a triangular body, outlined.
    body = [(62, 30), (98, 30), (98, 70), (136, 138), (24, 138), (62, 70)]
    liquid_top = 96 + (2 if step % 2 else 0)
    draw.polygon([(44, liquid_top), (116, liquid_top), (136, 138), (24, 138)], fill=3)
    draw.line(body + [body[0]], fill=1, width=4)
    draw.line([(56, 30), (104, 30)], fill=1, width=5)
    # Bubbles rise through the liquid and out of the neck.
    for offset, x in ((0, 70), (4, 86), (8, 78)):
        y = 130 - ((step + offset) % FRAMES) * 10
        radius = 4 + ((step + offset) % 3)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=2 if y < 96 else 4)
    return image


def main() -> None:
    frames = [frame(step) for step in range(FRAMES)]
    frames[0].save(
        OUT, save_all=True, append_images=frames[1:], duration=120, loop=0, optimize=True
    )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
