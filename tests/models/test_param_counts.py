"""Parameter counts of the official presets (built on the meta device) against the official code.

Reference values: ../shared/reference/pixelfolder_cips_stylegan2.md §9 (table "Measured numbers", millions
with 3 decimals, measured on the official constructors, cm=2, style_dim=512, n_mlp=8; CIPSres 512/1024 from
the note under the table) and the exact 256 totals from ../shared/reference/pixelfolder_cips_stylegan2_keys.txt
(section headers "parameters N").
"""
import pytest

from pixelfolder.models import count_parameters
from tests.helpers import build_meta

# ../shared/reference/pixelfolder_cips_stylegan2_keys.txt: exact parameter totals at 256 px.
EXACT_256 = {
    "pixelfolder": 20_843_614,
    "cips_skip": 44_317_092,
    "cips_res": 43_027_858,
    "stylegan2": 30_034_338,
    "stylegan2_d": 28_864_129,   # Discriminator size=256 input_size=3 (--img2dis)
}

# ../shared/reference/pixelfolder_cips_stylegan2.md §9: "G total M" (generators) and "D M" (discriminator).
TABLE_M = {
    "pixelfolder": {64: 18.013, 128: 16.610, 256: 20.844, 512: 17.478, 1024: 21.141},
    "cips_skip": {64: 11.824, 128: 18.839, 256: 44.317, 512: 145.124, 1024: 547.846},
    "cips_res": {64: 10.767, 128: 17.649, 256: 43.028, 512: 143.856, 1024: 546.595},
    "stylegan2": {64: 27.033, 128: 29.329, 256: 30.034, 512: 30.277, 1024: 30.370},
    "stylegan2_d": {64: 26.489, 128: 28.389, 256: 28.864, 512: 28.983, 1024: 29.013},
}

# §9 "n_latent" column (CIPS: 1) and §3/§4 of the same file.
N_LATENT = {
    "pixelfolder": {64: 9, 128: 9, 256: 13, 512: 13, 1024: 17},
    "stylegan2": {64: 10, 128: 12, 256: 14, 512: 16, 1024: 18},
    "cips_skip": {r: 1 for r in (64, 128, 256, 512, 1024)},
    "cips_res": {r: 1 for r in (64, 128, 256, 512, 1024)},
}

# §9 "mapping M" = 2.101: 8 EqualLinear(512, 512) layers with bias = 8 * (512 * 512 + 512).
MAPPING_PARAMS = 2_101_248

CASES = [(arch, res) for arch, row in TABLE_M.items() for res in row]


def test_mapping_formula_matches_table():
    assert MAPPING_PARAMS == 8 * (512 * 512 + 512)
    assert round(MAPPING_PARAMS / 1e6, 3) == 2.101


@pytest.mark.parametrize("arch", sorted(EXACT_256))
def test_exact_256_totals(arch):
    model = build_meta(f"{arch}-256")
    assert count_parameters(model) == EXACT_256[arch]
    assert round(EXACT_256[arch] / 1e6, 3) == TABLE_M[arch][256]   # the two reference files agree


@pytest.mark.parametrize("arch,res", CASES, ids=[f"{a}-{r}" for a, r in CASES])
def test_totals_to_three_decimals(arch, res):
    model = build_meta(f"{arch}-{res}")
    assert next(model.parameters()).device.type == "meta"
    assert round(count_parameters(model) / 1e6, 3) == pytest.approx(TABLE_M[arch][res], abs=1e-9)


NL_CASES = [(arch, res) for arch, row in N_LATENT.items() for res in row]


@pytest.mark.parametrize("arch,res", NL_CASES, ids=[f"{a}-{r}" for a, r in NL_CASES])
def test_mapping_params_and_n_latent(arch, res):
    G = build_meta(f"{arch}-{res}")
    assert count_parameters(G.mapping) == MAPPING_PARAMS
    assert G.n_latent == N_LATENT[arch][res]
