"""kbnn.models.summary and `kbnn summary`: counts checked against hand-computed values."""

import json
import math

import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
from kbnn import layers as kl
from kbnn.cli import main
from kbnn.errors import UsageError
from kbnn.models import HOROWITZ_45NM, EnergyModel, mac_cost, summary

import larq as lq
import pytest
import tensorflow as tf

# Horowitz, ISSCC 2014, 45 nm (pJ) — written out here independently of kbnn.models.
F32_ADD, F32_MULT = 0.9, 3.7
I32_ADD = 0.1
I8_ADD, I8_MULT = 0.03, 0.2
DRAM, SRAM = 640.0, 5.0
XNOR_POPCOUNT = 2 * I8_ADD / 8  # XNOR gate + one popcount full adder, each ≈ 1/8 of an 8-bit add
F32_MAC = F32_MULT + F32_ADD
I8_MAC = I8_MULT + I32_ADD


def _one_layer(layer, input_shape):
    return tf.keras.Sequential([tf.keras.Input(input_shape), layer])


def _quiet(model, **kwargs):
    return summary(model, print_fn=None, **kwargs)


def test_binary_conv_counts():
    # 3×3 kernel, 2 → 4 channels on a 6×6 input, VALID: 4×4 output pixels.
    model = _one_layer(
        lq.layers.QuantConv2D(
            4,
            3,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            use_bias=False,
            name="bconv",
        ),
        (6, 6, 2),
    )
    row = _quiet(model).layers[0]
    params, pixels = 3 * 3 * 2 * 4, 4 * 4
    assert (row.input_bits, row.kernel_bits) == (1, (1,))
    assert row.params == {1: params}
    assert row.memory_bytes == params // 8 == 9
    assert row.float32_bytes == 4 * params
    assert row.binary_ops == params * pixels == 1152
    assert row.int8_macs == row.float_macs == 0
    assert row.compute_energy_pj == pytest.approx(1152 * XNOR_POPCOUNT)  # 8.64 pJ
    assert row.memory_energy_pj == pytest.approx(math.ceil(params / 32) * DRAM)  # 3 words
    assert row.float32_compute_energy_pj == pytest.approx(1152 * F32_MAC)
    assert row.float32_memory_energy_pj == pytest.approx(params * DRAM)


def test_ternary_dense_with_float_inputs():
    # TWN kernel 4×3: 12 two-bit weights (2 bit planes) + α per output channel (3 float32).
    model = _one_layer(kl.TernaryDense(3, name="tdense"), (4,))
    row = _quiet(model).layers[0]
    assert (row.input_bits, row.kernel_bits) == (None, (2,))
    assert row.params == {2: 12}
    assert row.scale_params == 3
    assert row.memory_bytes == 12 * 2 // 8 + 3 * 4 == 15
    # float input × {−1, 0, +1}·α: a float add per MAC, no multiply, no binary ops
    assert (row.binary_ops, row.int8_macs, row.float_macs) == (0, 0, 12)
    assert row.float_macs_multiply_free == 12
    assert row.compute_energy_pj == pytest.approx(12 * F32_ADD)
    assert row.memory_energy_pj == pytest.approx((1 + 3) * DRAM)  # 24 bits → 1 word, 3 scales


def test_ternary_dense_with_ternary_inputs_is_four_bit_planes():
    model = _one_layer(
        lq.layers.QuantDense(
            3, input_quantizer="ste_tern", kernel_quantizer="ste_tern", use_bias=False
        ),
        (4,),
    )
    row = _quiet(model).layers[0]
    assert row.params == {2: 12}
    assert row.scale_params == 0  # larq's ste_tern has no scale
    assert row.binary_ops == 12 * 2 * 2  # 2 input planes × 2 weight planes per MAC
    assert row.compute_energy_pj == pytest.approx(48 * XNOR_POPCOUNT)


def test_int8_layer():
    # int8 = input and kernel quantizers of precision 8 (here larq's NoOp tags); float32 bias.
    int8 = lq.quantizers.NoOp(precision=8)
    model = _one_layer(
        lq.layers.QuantDense(5, input_quantizer=int8, kernel_quantizer=int8, name="int8"), (3,)
    )
    row = _quiet(model).layers[0]
    assert (row.input_bits, row.kernel_bits) == (8, (8,))
    assert row.params == {8: 15, 32: 5}
    assert row.memory_bytes == 15 + 5 * 4
    assert (row.binary_ops, row.int8_macs, row.float_macs) == (0, 15, 0)
    assert row.compute_energy_pj == pytest.approx(15 * I8_MAC)
    assert row.memory_energy_pj == pytest.approx((math.ceil(15 * 8 / 32) + 5) * DRAM)


def test_dorefa_8bit_layer_is_int8_with_its_scale():
    model = _one_layer(kl.DorefaDense(5, bit_w=8, bit_a=8), (3,))
    row = _quiet(model).layers[0]
    assert row.int8_macs == 15 and row.binary_ops == 0
    assert row.memory_bytes == 15 + 4  # 8-bit levels + the constant 1/n scale


def test_dorefa_low_bit_layer_is_bit_serial():
    model = _one_layer(kl.DorefaDense(5, bit_w=2, bit_a=3), (4,))
    row = _quiet(model).layers[0]
    assert row.binary_ops == 20 * 2 * 3
    assert row.memory_bytes == math.ceil(20 * 2 / 8) + 4


def test_float_layer_is_its_own_twin():
    model = _one_layer(tf.keras.layers.Dense(2, name="float"), (5,))
    result = _quiet(model)
    row = result.layers[0]
    assert (row.input_bits, row.kernel_bits) == (None, (32,))
    assert row.params == {32: 12}
    assert row.memory_bytes == row.float32_bytes == 48
    assert row.float_macs == 10 and row.float_macs_multiply_free == 0
    assert row.compute_energy_pj == pytest.approx(10 * F32_MAC)
    assert row.memory_energy_pj == pytest.approx(12 * DRAM)
    assert result.energy_ratio == pytest.approx(1.0)
    assert result.memory_ratio == pytest.approx(1.0)


def _mixed_model():
    return tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 2)),
            lq.layers.QuantConv2D(
                4,
                3,
                input_quantizer="ste_sign",
                kernel_quantizer="ste_sign",
                kernel_constraint="weight_clip",
                use_bias=False,
                name="bconv",
            ),
            tf.keras.layers.BatchNormalization(name="bn"),
            tf.keras.layers.Flatten(name="flatten"),
            kl.TernaryDense(3, name="tdense"),
            tf.keras.layers.Dense(2, name="float"),
        ],
        name="mixed",
    )


def test_totals_and_ratio_against_float32_twin():
    result = _quiet(_mixed_model())
    # bconv 72 × 1 bit; bn 4 channels × (γ·σ⁻¹, β−μ) folded = 8 float; tdense 64×3 twn; 3×2+2
    assert result.params == {1: 72, 2: 192, 32: 8 + 8}
    assert result.memory_bytes == 9 + 32 + (192 * 2 // 8 + 3 * 4) + 32
    assert result.float32_bytes == 4 * (72 + 8 + 192 + 8)
    energy = (
        1152 * XNOR_POPCOUNT
        + 3 * DRAM  # bconv
        + 8 * DRAM  # bn
        + 192 * F32_ADD
        + (12 + 3) * DRAM  # tdense: 384 bits = 12 words + 3 α
        + 6 * F32_MAC
        + 8 * DRAM
    )  # float
    twin = (1152 + 192 + 6) * F32_MAC + (72 + 8 + 192 + 8) * DRAM
    assert result.energy_pj == pytest.approx(energy)
    assert result.float32_energy_pj == pytest.approx(twin)
    assert result.energy_ratio == pytest.approx(twin / energy)
    assert result.memory_ratio == pytest.approx(result.float32_bytes / result.memory_bytes)
    # parameter counts agree with larq's own profile of the same model
    profile = lq.models.ModelProfile(_mixed_model())
    assert sum(result.params.values()) == profile.weight_count()


def test_sram_energy_model():
    model = _one_layer(tf.keras.layers.Dense(2), (5,))
    energy = EnergyModel(weight_memory="sram")
    row = _quiet(model, energy_model=energy).layers[0]
    assert row.memory_energy_pj == pytest.approx(12 * SRAM)


@pytest.mark.parametrize(
    "input_bits, weight_bits, kind, ops, energy",
    [
        (1, 1, "binary", 1, XNOR_POPCOUNT),
        (3, 2, "binary", 6, 6 * XNOR_POPCOUNT),
        (8, 1, "binary", 8, 8 * XNOR_POPCOUNT),  # 8-bit first layer as 8 bit planes
        (8, 4, "binary", 32, 32 * XNOR_POPCOUNT),  # 0.24 pJ ≤ 0.3 pJ int8 MAC
        (8, 8, "int8", 0, I8_MAC),  # 64 planes would cost 0.48 pJ
        (None, 1, "float", 0, F32_ADD),  # float × ±1: add only
        (None, 2, "float", 0, F32_ADD),
        (None, 8, "float", 0, F32_MAC),
        (None, None, "float", 0, F32_MAC),
    ],
)
def test_mac_cost_rule(input_bits, weight_bits, kind, ops, energy):
    cost = mac_cost(input_bits, weight_bits, HOROWITZ_45NM)
    assert (cost.kind, cost.binary_ops) == (kind, ops)
    assert cost.energy_pj == pytest.approx(energy)


def test_printed_table_and_json_result(capsys):
    result = summary(_mixed_model())
    printed = capsys.readouterr().out
    for text in ("bconv", "tdense", "float", "Energy reduction", "Float32 twin memory"):
        assert text in printed
    data = json.loads(json.dumps(result.as_dict()))
    assert data["totals"]["binary_ops"] == 1152
    assert data["totals"]["params"] == {"1": 72, "2": 192, "32": 16}
    assert data["totals"]["energy_ratio"] == pytest.approx(result.energy_ratio)
    assert [x["name"] for x in data["layers"]] == ["bconv", "bn", "flatten", "tdense", "float"]
    assert data["energy_model"]["binary_op"] == pytest.approx(XNOR_POPCOUNT)
    summary(_mixed_model(), print_fn=None)
    assert capsys.readouterr().out == ""


def test_nested_models_are_flattened():
    inner = _mixed_model()
    inputs = tf.keras.Input((6, 6, 2))
    outer = tf.keras.Model(inputs, tf.keras.layers.Softmax()(inner(inputs)), name="outer")
    result = _quiet(outer)
    assert "mixed/bconv" in [x.name for x in result.layers]
    assert result.total("binary_ops") == 1152


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="model: expected a tf.keras.Model"):
        summary("model.h5")
    unbuilt = tf.keras.Sequential([tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        summary(unbuilt)
    with pytest.raises(ValueError, match="weight_memory"):
        EnergyModel(weight_memory="flash")
    with pytest.raises(ValueError, match="energy_model"):
        summary(_mixed_model(), energy_model={"dram": 1})
    no_precision = _one_layer(lq.layers.QuantDense(2, kernel_quantizer=tf.sign, name="q"), (3,))
    with pytest.raises(UsageError, match="'q'.*precision"):
        _quiet(no_precision)


def test_cli_summary_of_saved_model(tmp_path, capsys):
    path = tmp_path / "mixed.keras"
    _mixed_model().save(path)
    plot, data, hist = tmp_path / "chart.png", tmp_path / "summary.json", tmp_path / "h.png"
    rc = main(
        [
            "summary",
            str(path),
            "--plot",
            str(plot),
            "--json",
            str(data),
            "--unique-kernels",
            "--histograms",
            str(hist),
            "--weight-memory",
            "sram",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "Energy reduction" in out and "unique kernels" in out
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 5000
    assert hist.read_bytes().startswith(b"\x89PNG")
    saved = json.loads(data.read_text())
    assert saved["summary"]["totals"]["binary_ops"] == 1152
    assert saved["summary"]["energy_model"]["word_read"] == SRAM
    assert saved["unique_kernels"]["layers"][0]["total"] == 2 * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chart.png",
        "h.png",
        "mixed.keras",
        "summary.json",
    ]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["summary", str(tmp_path / "missing.keras")]) == 2
    err = capsys.readouterr().err
    assert "missing.keras" in err and err.count("\n") == 1
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert main(["summary", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.h5' is not a Keras model file" in err and err.count("\n") == 1
    assert main(["summary", "no_such_model_anywhere"]) == 2
    assert "no_such_model_anywhere" in capsys.readouterr().err


def test_markdown_lists_layers_with_weights_and_the_totals():
    text = _quiet(_mixed_model()).markdown()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[:5] == ["Layer", "bconv", "bn", "tdense", "float"]  # flatten has nothing
    assert "1,152 / 0 / 198" in text  # binary ops / int8 / float MACs (192 tdense + 6 float)
