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

    private static FlatParameters Seeded(ParameterLayout layout)
    {
        var p = new FlatParameters(layout, ScalarType.Float32, CPU);
        p.CopyFrom(randn([layout.Elements], generator: new Generator(4)));
        return p;
    }
}
