using AiOs.Planner.Simulation.Program;

namespace AiOs.Planner.Core.Tests;

/// <summary>Dependency walks over a step program's operations (each operation's id is its index).</summary>
internal static class ProgramGraph
{
    /// <summary>The ids of every operation <paramref name="op"/> waits for, directly or through others.</summary>
    public static HashSet<int> Ancestors(IReadOnlyList<Operation> ops, Operation op)
    {
        var seen = new HashSet<int>();
        var stack = new Stack<int>(op.Deps);
        while (stack.Count > 0)
        {
            int d = stack.Pop();
            if (seen.Add(d)) foreach (int next in ops[d].Deps) stack.Push(next);
        }
        return seen;
    }
}
