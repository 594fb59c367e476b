"""Writes orchard.csv, the example table of configs/orchard.yaml (run once; the CSV is shipped).

400 apples of three varieties measured at harvest: numbers (weight, diameter, sugar, acidity),
text (orchard, harvest), a boolean (organic), a few values missing in most columns and a few
rows without a variety, as real tables come.
"""

from pathlib import Path

import numpy as np
import pandas as pd

VARIETIES = {  # weight g, diameter mm, sugar Brix, acidity %: means
    "Fuji": (210.0, 78.0, 15.0, 0.35),
    "Gala": (160.0, 70.0, 13.0, 0.40),
    "Honeycrisp": (240.0, 83.0, 13.5, 0.55),
}


def make(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    variety = rng.choice(list(VARIETIES), size=n, p=[0.4, 0.35, 0.25])
    means = np.array([VARIETIES[v] for v in variety])
    spread = np.array([35.0, 6.0, 1.6, 0.09])
    numbers = means + rng.randn(n, 4) * spread
    orchard = np.where(
        variety == "Honeycrisp",
        rng.choice(["north", "east", "south"], size=n, p=[0.6, 0.3, 0.1]),
        rng.choice(["north", "east", "south"], size=n, p=[0.2, 0.4, 0.4]),
    )
    harvest = np.where(
        variety == "Fuji",
        rng.choice(["early", "late"], n, p=[0.2, 0.8]),
        rng.choice(["early", "late"], n),
    )
    frame = pd.DataFrame(
        {
            "weight_g": numbers[:, 0].round(1),
            "diameter_mm": numbers[:, 1].round(1),
            "sugar_brix": numbers[:, 2].round(2),
            "acidity_pct": numbers[:, 3].round(3),
            "orchard": orchard,
            "harvest": harvest,
            "organic": rng.rand(n) < 0.3,
            "variety": variety,
        }
    ).astype({"organic": object})
    for column, count in (("weight_g", 9), ("sugar_brix", 14), ("orchard", 7), ("organic", 11)):
        frame.loc[rng.choice(n, count, replace=False), column] = np.nan
    frame.loc[rng.choice(n, 3, replace=False), "variety"] = np.nan
    return frame


if __name__ == "__main__":
    make().to_csv(Path(__file__).with_name("orchard.csv"), index=False)
