using Spectre.Console;

namespace AiOs.Planner.Cli.Rendering;

/// <summary>
/// Table rows, columns and titles from data, never parsed as markup: <c>AddRow(string)</c>, <c>AddColumns(string)</c> and
/// <c>Title(string)</c> read their text as Spectre markup, so a model, path or header holding <c>[</c> or <c>]</c>
/// (<c>x[1]</c>, <c>[quartiles]</c>) either throws or loses text. Cells that carry colour on purpose build a
/// <see cref="Markup"/> with <see cref="Markup.Escape"/> around the data.
/// </summary>
internal static class TableText
{
    /// <summary>Adds a row whose cells are shown exactly as given.</summary>
    public static Table AddTextRow(this Table table, params string?[] cells) =>
        table.AddRow(cells.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c ?? "")).ToArray());

    /// <summary>Adds columns whose headers are shown exactly as given.</summary>
    public static Table AddTextColumns(this Table table, params string[] headers)
    {
        foreach (string h in headers) table.AddColumn(new TableColumn(new Text(h)));
        return table;
    }

    /// <summary>Sets a title shown exactly as given.</summary>
    public static Table TextTitle(this Table table, string title)
    {
        table.Title = new TableTitle(Markup.Escape(title));
        return table;
    }

    /// <summary>A cell that shows <paramref name="text"/> in <paramref name="colour"/> (a Spectre colour name).</summary>
    public static Markup Coloured(string text, string colour) => new($"[{colour}]{Markup.Escape(text)}[/]");
}
