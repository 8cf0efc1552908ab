using System.CommandLine;
namespace AiOs.Planner.Cli;
public static class Program
{
    public static int Main(string[] args)
    {
        var root = new RootCommand("x");
        var o = new Option<int>("--n") { Description = "n", DefaultValueFactory = _ => 3 };
        var c = new Command("plan", "p") { o };
        c.SetAction(pr => { Console.WriteLine(pr.GetValue(o)); return 0; });
        root.Subcommands.Add(c);
        return root.Parse(args).Invoke();
    }
}
