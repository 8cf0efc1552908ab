using AiOs.Planner.Engine.Model;
using AiOs.Planner.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace AiOs.Planner.Engine.Tests;

/// <summary>
/// A unit's gradients packed from autograd's list (<see cref="FlatParameters.PackGradients"/>, the resident trainer's layer
/// backward) are the ones packed from the parameters' <c>grad</c> after <c>backward</c> (<see cref="FlatParameters.TakePackedGradients"/>), to the bit.
/// </summary>
public sealed class PackedGradientTests
{
    /// <summary>Same shape and every element equal (bitwise for finite values).</summary>
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static FlatParameters Seeded(ParameterLayout layout, ScalarType dtype)
    {
        var p = new FlatParameters(layout, dtype, CPU);
        p.CopyFrom(randn([layout.Elements], generator: new Generator(4)) * 0.1);
        return p;
    }

    [Theory]
    [InlineData("tiny-gpt", ScalarType.Float32)]
    [InlineData("tiny-gpt", ScalarType.BFloat16)]
    [InlineData("tiny-llama", ScalarType.Float32)]
    public void Given_a_decoder_layer_When_its_gradients_come_from_autograds_list_Then_they_pack_to_the_bits_of_backward_and_grad(string model, ScalarType dtype)
    {
        var spec = ModelCatalog.Default.Load(model);
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), dtype);
        using var layer = new DecoderLayer(spec, p);
        layer.eval();
        using var scope = NewDisposeScope();
        Tensor x = (randn([2, 8, spec.HiddenSize], generator: new Generator(11)) * 0.5).to(dtype);
        Tensor r = randn([2, 8, spec.HiddenSize], generator: new Generator(12)).to(dtype);

        Tensor input1 = x.detach().requires_grad_(true);
        layer.forward(input1).backward([r]);
        Tensor viaFields = p.TakePackedGradients(ScalarType.Float32);

        Tensor input2 = x.detach().requires_grad_(true);
        Tensor output = layer.forward(input2);
        var gradients = TorchSharp.torch.autograd.grad([output], [.. p.GradientLeaves, input2], [r], false, false, true);
        Tensor viaList = p.PackGradients(gradients, ScalarType.Float32);

        Assert.Equal(p.Layout.Elements, viaList.numel());
        Assert.True(Same(viaList, viaFields), $"{model}: the packed gradients differ");
        Assert.True(Same(gradients[^1], input1.grad!), $"{model}: the input's gradient differs");
        Assert.NotEqual(0.0, viaList.abs().sum().item<float>());
        // The list path never touches the parameters' own gradients.
        Assert.All(p.Named(), n => Assert.Null(n.Parameter.grad));
        viaFields.Dispose();
    }

    [Fact]
    public void Given_a_member_used_alone_and_a_leaf_unused_When_packed_from_the_list_Then_the_member_sums_both_and_the_unused_slice_is_zeros()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), ScalarType.Float32);
        using var scope = NewDisposeScope();
        Tensor x = randn([2, spec.HiddenSize], generator: new Generator(8));
        // The joint q·k·v view and the k member alone; ln1.bias (and most of the layer) unused.
        Tensor Loss() => F.linear(x, p.Fused("attn.qkv.weight")!).sum() + F.linear(x, p["attn.k.weight"]).sum() + (p["ln1.weight"] * 3).sum();

        Loss().backward();
        Tensor viaFields = p.TakePackedGradients(ScalarType.Float32);
        var gradients = TorchSharp.torch.autograd.grad([Loss()], [.. p.GradientLeaves], null, false, false, true);
        Tensor viaList = p.PackGradients(gradients, ScalarType.Float32);

        Assert.True(Same(viaList, viaFields));
        ParameterSlice k = p.Layout.Find("attn.k.weight")!, q = p.Layout.Find("attn.q.weight")!, bias = p.Layout.Find("ln1.bias")!;
        Tensor column = x.sum(dim: 0L);
        Assert.True(viaList.narrow(0, q.Offset, spec.HiddenSize).allclose(column, rtol: 1e-5, atol: 1e-6));
        Assert.True(viaList.narrow(0, k.Offset, spec.HiddenSize).allclose(column * 2.0, rtol: 1e-5, atol: 1e-6));
        Assert.Equal(0.0, viaList.narrow(0, bias.Offset, bias.Elements).abs().sum().item<float>());
        viaFields.Dispose();
    }

    [Fact]
    public void Given_fewer_gradients_than_leaves_When_packed_Then_it_is_refused_with_the_counts()
    {
        var spec = ModelCatalog.Default.Load("tiny-gpt");
        using FlatParameters p = Seeded(ParameterLayout.ForLayer(spec), ScalarType.Float32);
        var e = Assert.Throws<ArgumentException>(() => p.PackGradients([zeros(1)], ScalarType.Float32));
        Assert.Contains($"{p.GradientLeaves.Count} leaves", e.Message);
    }
}

/// <summary>The attention's q, k and v views of the joint product: one view, permutation and unbind give the split-and-transpose views' shapes, strides and values.</summary>
public sealed class JointProjectionViewTests
{
    [Fact]
    public void Given_a_joint_qkv_product_When_viewed_by_unbind_Then_each_third_has_the_split_views_shape_strides_and_values()
    {
        const long b = 2, t = 5, heads = 4, d = 8;
        using var scope = NewDisposeScope();
        Tensor joint = randn([b * t, 3 * heads * d], generator: new Generator(3));

        Tensor[] viaUnbind = joint.view(b, t, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0);
        Tensor[] split = joint.split([heads * d, heads * d, heads * d], -1);

        for (int i = 0; i < 3; i++)
        {
            Tensor expected = split[i].view(b, t, heads, d).transpose(1, 2);
            Assert.Equal(expected.shape, viaUnbind[i].shape);
            Assert.Equal(expected.stride(), viaUnbind[i].stride());
            Assert.True(expected.eq(viaUnbind[i]).all().item<bool>());
        }
    }
}
