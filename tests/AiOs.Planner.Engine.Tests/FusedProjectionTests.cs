using AiOs.Planner.Engine.Model;
using AiOs.Planner.Engine.Native;
using AiOs.Planner.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// The joint views over q, k and v (and SwiGLU's gate and up): where they lie in a layer's buffer, and that a gradient
/// taken through one reaches each member's place as the members' own products would give it (<see cref="FlatParameters.Gradient"/>,
/// <see cref="FlatParameters.TakePackedGradients"/>).
/// </summary>
[Collection(nameof(TorchGlobalRandom))]
public sealed class FusedProjectionTests
{
    public FusedProjectionTests() => TorchRuntime.EnsureReady();

    private static readonly string[] Checked = ["attn.q.weight", "attn.k.bias", "attn.v.weight"];
    private static readonly string[] Qkv = ["attn.q", "attn.k", "attn.v"];

    [Theory]
    [InlineData("tiny-gpt", new[] { "attn.qkv.weight", "attn.qkv.bias" })]
    [InlineData("tiny-llama", new[] { "attn.qkv.weight", "mlp.gate_up.weight" })]
    public void Given_a_layer_layout_When_read_Then_each_joint_view_covers_its_members_back_to_back(string model, string[] joints)
    {
        var spec = ModelCatalog.Default.Load(model);
        var layout = ParameterLayout.ForLayer(spec);

        Assert.Equal(joints, layout.Fused.Select(f => f.Name));
        foreach (FusedSlice f in layout.Fused)
        {
            var members = f.Members.Select(m => layout.Find(m)!).ToList();
            Assert.Equal(members[0].Offset, f.Offset);
            for (int i = 1; i < members.Count; i++) Assert.Equal(members[i - 1].Offset + members[i - 1].Elements, members[i].Offset);
            Assert.Equal(members.Sum(m => m.Elements), f.Elements);
            Assert.Equal(members.Sum(m => m.Shape[0]), f.Shape[0]);
            Assert.All(members, m => Assert.Equal(f.Shape[1..], m.Shape[1..]));
        }
    }

    [Fact]
    public void Given_q_k_and_v_computed_through_the_joint_view_When_back_propagated_Then_each_member_gets_the_gradient_of_its_own_product()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        var layout = ParameterLayout.ForLayer(spec);
        using FlatParameters joint = Seeded(layout), separate = Seeded(layout);
        using var scope = NewDisposeScope();
        Tensor x = randn([3, spec.HiddenSize], generator: new Generator(5));
        Tensor r = randn([3, 3 * spec.HiddenSize], generator: new Generator(6));

        (F.linear(x, joint.Fused("attn.qkv.weight")!, joint.Fused("attn.qkv.bias")) * r).sum().backward();
        Tensor apart = cat([.. Qkv.Select(n => F.linear(x, separate[n + ".weight"], separate[n + ".bias"]))], -1);
        (apart * r).sum().backward();

        foreach (string name in Checked)
            Assert.True(joint.Gradient(name)!.allclose(separate.Gradient(name)!, rtol: 1e-5, atol: 1e-6), name);
        // Packed in layout order: the joint gradient lands where the members' gradients do; unused slices are zeros.
        Tensor a = joint.TakePackedGradients(ScalarType.Float32), b = separate.TakePackedGradients(ScalarType.Float32);
        Assert.True(a.allclose(b, rtol: 1e-5, atol: 1e-6));
        Assert.Null(joint.Gradient("attn.q.weight"));
    }

    [Fact]
    public void Given_a_member_used_both_alone_and_through_its_joint_view_When_back_propagated_Then_its_gradient_is_the_sum()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec));
        using var scope = NewDisposeScope();
        Tensor x = randn([2, spec.HiddenSize], generator: new Generator(8));

        (F.linear(x, p.Fused("attn.qkv.weight")!).sum() + F.linear(x, p["attn.k.weight"]).sum()).backward();

        // Through the joint view each row's gradient is Σ x; the member alone adds as much again.
        Tensor column = x.sum(dim: 0L);
        Assert.True(p.Gradient("attn.q.weight")!.select(0, 0).allclose(column, rtol: 1e-5, atol: 1e-6));
        Assert.True(p.Gradient("attn.k.weight")!.select(0, 0).allclose(column * 2.0, rtol: 1e-5, atol: 1e-6));
    }

    [Theory]
    [InlineData("tiny-gpt")]
    [InlineData("tiny-llama")]
    public void Given_a_decoder_layer_When_run_through_its_joint_views_Then_output_and_every_gradient_equal_the_separate_projections(string model)
    {
        var spec = ModelCatalog.Default.Load(model);
        using FlatParameters joint = Seeded(ParameterLayout.ForLayer(spec)), separate = Seeded(ParameterLayout.ForLayer(spec));
        using var layer = new DecoderLayer(spec, joint);
        layer.eval();
        using var scope = NewDisposeScope();
        Tensor x = randn([2, 8, spec.HiddenSize], generator: new Generator(11)) * 0.5;
        Tensor r = randn([2, 8, spec.HiddenSize], generator: new Generator(12));

        Tensor viaLayer = layer.forward(x);
        (viaLayer * r).sum().backward();
        Tensor reference = Separate(spec, separate, x);
        (reference * r).sum().backward();

        Assert.True(viaLayer.allclose(reference, rtol: 1e-5, atol: 1e-5), "the layer's output differs from the separate projections'");
        // Within 10⁻⁴ of each gradient's largest magnitude: the input's gradient is one product's sum instead of three
        // products added, so fp32 rounding differs, and a norm weight's gradient sums those over every token.
        foreach (var (name, _) in separate.Named())
        {
            Tensor a = joint.Gradient(name)!, e = separate.Gradient(name)!;
            double scale = e.abs().max().item<float>(), worst = (a - e).abs().max().item<float>();
            Assert.True(worst <= 1e-4 * scale + 1e-6, $"{model}: {name}'s gradient differs by {worst} (largest {scale})");
        }
    }

    /// <summary>The layer from its member parameters, one projection each: the computation before the joint views.</summary>
    private static Tensor Separate(ModelSpec spec, FlatParameters p, Tensor x)
    {
        long b = x.shape[0], t = x.shape[1];
        int heads = spec.NumHeads, kv = spec.KvHeads, d = spec.HeadDim;
        Tensor h = TransformerOps.Norm(x, spec, p, "ln1");
        Tensor q = TransformerOps.Linear(h, p, "attn.q").view(b, t, heads, d).transpose(1, 2);
        Tensor k = TransformerOps.Linear(h, p, "attn.k").view(b, t, kv, d).transpose(1, 2);
        Tensor v = TransformerOps.Linear(h, p, "attn.v").view(b, t, kv, d).transpose(1, 2);
        if (spec.Positions == PositionKind.Rotary)
        {
            q = TransformerOps.Rotary(q, spec);
            k = TransformerOps.Rotary(k, spec);
        }
        if (kv != heads)
        {
            k = k.repeat_interleave(heads / kv, 1);
            v = v.repeat_interleave(heads / kv, 1);
        }
        Tensor a = F.scaled_dot_product_attention(q, k, v, is_casual: true);
        Tensor attended = x + TransformerOps.Linear(a.transpose(1, 2).reshape(b, t, spec.HiddenSize), p, "attn.o");
        Tensor h2 = TransformerOps.Norm(attended, spec, p, "ln2");
        Tensor ffn = spec.FfnKind == FfnKind.Swiglu
            ? TransformerOps.Linear(F.silu(TransformerOps.Linear(h2, p, "mlp.gate")) * TransformerOps.Linear(h2, p, "mlp.up"), p, "mlp.down")
            : TransformerOps.Linear(TransformerOps.Gelu(TransformerOps.Linear(h2, p, "mlp.fc"), spec.Activation), p, "mlp.proj");
        return attended + ffn;
    }

    private static FlatParameters Seeded(ParameterLayout layout)
    {
        var p = new FlatParameters(layout, ScalarType.Float32, CPU);
        p.CopyFrom(randn([layout.Elements], generator: new Generator(4)));
        return p;
    }
}
