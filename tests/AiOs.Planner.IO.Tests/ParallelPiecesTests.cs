using AiOs.Planner.Settings;
using AiOs.Planner.Units;

namespace AiOs.Planner.IO.Tests;

public class ParallelPiecesTests
{
    [Fact]
    public void Given_a_request_of_many_blocks_When_written_and_read_in_parallel_pieces_Then_every_byte_lands_in_place()
    {
        using var dir = new TempDir();
        using var pieces = new ParallelPieces(new AioSettings { BlockSize = Bytes.FromKiB(64), QueueDepth = 4, IntraOpParallelism = 2 });
        using var data = new AlignedBuffer(Bytes.FromKiB(1024 + 64));
        using var back = new AlignedBuffer(Bytes.FromKiB(1024 + 64));
        Pattern.Fill(data.AsSpan(), 7);
        using var f = DirectFile.Open(dir.File("p"), DirectFileMode.ReadWrite);

        // 17 pieces of 64 KiB at a 4 KiB-aligned (not block-aligned) file offset, from a buffer offset.
        long n = data.Length - 4096;
        Assert.Equal(n, pieces.Write(f, data, 4096, n, 12288));
        Assert.Equal(n, pieces.Read(f, back, 0, n, 12288));

        Assert.Equal(8, pieces.InFlight);
        Assert.True(data.AsSpan(4096, (int)n).SequenceEqual(back.AsSpan(0, (int)n)));
    }

    [Fact]
    public void Given_a_read_past_the_end_of_the_file_When_run_Then_it_returns_the_bytes_before_the_end()
    {
        using var dir = new TempDir();
        using var pieces = new ParallelPieces(new AioSettings { BlockSize = Bytes.FromKiB(16), QueueDepth = 4 });
        using var data = new AlignedBuffer(Bytes.FromKiB(40));
        using var back = new AlignedBuffer(Bytes.FromKiB(128));
        using var f = DirectFile.Open(dir.File("short"), DirectFileMode.ReadWrite);
        pieces.Write(f, data, 0, data.Length, 0);

        Assert.Equal(data.Length, pieces.Read(f, back, 0, back.Length, 0));
    }

    [Fact]
    public void Given_a_misaligned_length_When_moved_whole_Then_the_rule_is_named()
    {
        using var dir = new TempDir();
        using var pieces = new ParallelPieces();
        using var data = new AlignedBuffer(Bytes.FromKiB(8));
        using var f = DirectFile.Open(dir.File("m"), DirectFileMode.ReadWrite);

        var e = Assert.Throws<MisalignedIoException>(() => pieces.Write(f, data, 0, 1000, 0));
        Assert.Contains("4 KiB-aligned", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Given_a_request_of_many_pieces_that_fails_When_run_Then_the_piece_error_comes_out_unwrapped_as_for_one_piece()
    {
        using var dir = new TempDir();
        using var pieces = new ParallelPieces(new AioSettings { BlockSize = Bytes.FromKiB(16), QueueDepth = 4 });
        using var data = new AlignedBuffer(Bytes.FromKiB(256));
        using (var w = DirectFile.Open(dir.File("ro"), DirectFileMode.ReadWrite)) w.Write(data, 0, data.Length, 0);
        using var f = DirectFile.Open(dir.File("ro"), DirectFileMode.Read);

        var many = Record.Exception(() => pieces.Write(f, data, 0, data.Length, 0));
        var one = Record.Exception(() => pieces.Write(f, data, 0, Bytes.FromKiB(16).Value, 0));

        Assert.IsAssignableFrom<DirectIoException>(many);
        Assert.Equal(one!.GetType(), many!.GetType());
    }
}
