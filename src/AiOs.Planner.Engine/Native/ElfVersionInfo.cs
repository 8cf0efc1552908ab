using System.Buffers.Binary;
using System.Text;

namespace AiOs.Planner.Engine.Native;

/// <summary>One version requirement (a Vernaux entry of <c>.gnu.version_r</c>) and where its flags sit in the file.</summary>
/// <param name="File">The library the requirement is on (<c>libstdc++.so.6</c>).</param>
/// <param name="Version">The version name (<c>GLIBCXX_3.4.32</c>).</param>
/// <param name="Flags">The <c>vna_flags</c> value; bit 0x2 is <c>VER_FLG_WEAK</c>.</param>
/// <param name="FlagsOffset">File offset of the 16-bit <c>vna_flags</c> field.</param>
public sealed record ElfVersionNeed(string File, string Version, ushort Flags, long FlagsOffset)
{
    /// <summary>The ELF flag that makes a missing version a warning instead of a load failure.</summary>
    public const ushort WeakFlag = 0x2;

    /// <summary>Whether the requirement is marked weak.</summary>
    public bool IsWeak => (Flags & WeakFlag) != 0;
}

/// <summary>
/// Reads the symbol-version sections of a little-endian ELF64 shared object: the versions it needs
/// (<c>.gnu.version_r</c>, Verneed/Vernaux chains) and the versions it defines (<c>.gnu.version_d</c>).
/// Section headers are followed, not program headers, so stripped section names do not matter: the
/// sections are found by type and their strings through <c>sh_link</c>.
/// </summary>
public sealed class ElfVersionInfo
{
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;

    private ElfVersionInfo(IReadOnlyList<ElfVersionNeed> needs, IReadOnlyList<string> definitions)
    {
        Needs = needs;
        Definitions = definitions;
    }

    /// <summary>Every version requirement, in file order.</summary>
    public IReadOnlyList<ElfVersionNeed> Needs { get; }

    /// <summary>Every version name the object defines (for <c>libstdc++.so.6</c>: <c>GLIBCXX_3.4</c> … ).</summary>
    public IReadOnlyList<string> Definitions { get; }

    /// <summary>Reads the file at <paramref name="path"/>.</summary>
    public static ElfVersionInfo Read(string path) => Parse(File.ReadAllBytes(path), path);

    /// <summary>Parses an in-memory image; <paramref name="source"/> names it in errors.</summary>
    public static ElfVersionInfo Parse(ReadOnlySpan<byte> image, string source)
    {
        if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
            throw new InvalidDataException($"{source}: not an ELF file.");
        if (image[4] != 2 || image[5] != 1)
            throw new InvalidDataException($"{source}: only little-endian ELF64 is supported (class {image[4]}, data {image[5]}).");

        long shoff = checked((long)U64(image, 0x28));
        int shentsize = U16(image, 0x3A);
        int shnum = U16(image, 0x3C);
        if (shentsize < 64 || shoff <= 0 || shoff + (long)shnum * shentsize > image.Length)
            throw new InvalidDataException($"{source}: section header table out of bounds.");

        var sections = new Section[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int h = checked((int)(shoff + (long)i * shentsize));
            sections[i] = new Section(U32(image, h + 4), checked((long)U64(image, h + 24)), checked((long)U64(image, h + 32)), U32(image, h + 40), U32(image, h + 44));
            if (sections[i].Type is ShtGnuVerdef or ShtGnuVerneed && sections[i].Offset + sections[i].Size > image.Length)
                throw new InvalidDataException($"{source}: version section {i} out of bounds.");
        }

        var needs = new List<ElfVersionNeed>();
        var definitions = new List<string>();
        foreach (Section s in sections)
        {
            if (s.Type == ShtGnuVerneed)
                ReadNeeds(image, s, StringTable(sections, s, source), needs, source);
            else if (s.Type == ShtGnuVerdef)
                ReadDefinitions(image, s, StringTable(sections, s, source), definitions, source);
        }
        return new ElfVersionInfo(needs, definitions);
    }

    private static Section StringTable(Section[] sections, Section versions, string source) =>
        versions.Link < sections.Length ? sections[versions.Link] : throw new InvalidDataException($"{source}: version section links to a missing string table.");

    private static void ReadNeeds(ReadOnlySpan<byte> image, Section s, Section strings, List<ElfVersionNeed> needs, string source)
    {
        // Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32 (16 bytes).
        // Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32 (16 bytes).
        long need = s.Offset;
        for (uint n = 0; n < s.Info; n++)
        {
            Check(need, 16, s, source);
            int count = U16(image, need + 2);
            string file = CString(image, strings, U32(image, need + 4), source);
            long aux = need + U32(image, need + 8);
            for (int a = 0; a < count; a++)
            {
                Check(aux, 16, s, source);
                needs.Add(new ElfVersionNeed(file, CString(image, strings, U32(image, aux + 8), source), (ushort)U16(image, aux + 4), aux + 4));
                uint nextAux = U32(image, aux + 12);
                if (nextAux == 0) break;
                aux += nextAux;
            }
            uint next = U32(image, need + 12);
            if (next == 0) break;
            need += next;
        }
    }

    private static void ReadDefinitions(ReadOnlySpan<byte> image, Section s, Section strings, List<string> definitions, string source)
    {
        // Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32 (20 bytes).
        // Verdaux: vda_name u32, vda_next u32; the first Verdaux names the version itself.
        long def = s.Offset;
        for (uint n = 0; n < s.Info; n++)
        {
            Check(def, 20, s, source);
            if (U16(image, def + 6) > 0)
            {
                long aux = def + U32(image, def + 12);
                Check(aux, 8, s, source);
                definitions.Add(CString(image, strings, U32(image, aux), source));
            }
            uint next = U32(image, def + 16);
            if (next == 0) break;
            def += next;
        }
    }

    private static void Check(long at, int length, Section s, string source)
    {
        if (at < s.Offset || at + length > s.Offset + s.Size)
            throw new InvalidDataException($"{source}: version entry at offset {at} runs outside its section.");
    }

    private static string CString(ReadOnlySpan<byte> image, Section strings, uint index, string source)
    {
        long start = strings.Offset + index;
        if (index >= strings.Size) throw new InvalidDataException($"{source}: string index {index} outside the string table.");
        ReadOnlySpan<byte> rest = image.Slice(checked((int)start), checked((int)(strings.Size - index)));
        int end = rest.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? rest : rest[..end]);
    }

    private static ushort U16(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt16LittleEndian(b.Slice(checked((int)at), 2));
    private static uint U32(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(checked((int)at), 4));
    private static ulong U64(ReadOnlySpan<byte> b, long at) => BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(checked((int)at), 8));

    private readonly record struct Section(uint Type, long Offset, long Size, uint Link, uint Info);
}
