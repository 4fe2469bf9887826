using System.Reflection;
using System.Reflection.Emit;

namespace Tilt.Engine.Tests.Architecture;

/// <summary>
/// The namespace dependency graph of a compiled assembly, read from what the code really uses: base types, interfaces,
/// fields, signatures, generic arguments, local variables and every type, method and field token in the method bodies' IL
/// (a source scan misses references a child namespace makes to its parent without a using). Compiler-generated types count
/// for the namespace that contains them.
/// </summary>
public static class NamespaceGraph
{
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    private const BindingFlags Everything = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>Namespace -> namespaces it uses, for namespaces starting with <paramref name="prefix"/>.</summary>
    public static Dictionary<string, HashSet<string>> Build(Assembly assembly, string prefix) => Build(assembly, prefix, out _);

    /// <summary>The graph, and for each edge "A -> B" the types that make it (a few, for the failure message).</summary>
    public static Dictionary<string, HashSet<string>> Build(Assembly assembly, string prefix, out Dictionary<string, SortedSet<string>> witnesses)
    {
        var graph = new Dictionary<string, HashSet<string>>();
        var why = witnesses = [];
        foreach (var type in assembly.GetTypes())
        {
            if (type.Namespace is not { } from || !from.StartsWith(prefix, StringComparison.Ordinal)) continue;
            if (!graph.TryGetValue(from, out var uses)) graph[from] = uses = [];
            void Use(Type? t)
            {
                if (t is null) return;
                if (t.HasElementType) { Use(t.GetElementType()); return; }
                if (t.IsGenericType && !t.IsGenericTypeDefinition) foreach (var a in t.GetGenericArguments()) Use(a);
                if (t.IsGenericParameter) return;
                if (t.Namespace is not { } ns || ns == from || !ns.StartsWith(prefix, StringComparison.Ordinal)) return;
                uses.Add(ns);
                string edge = $"{from} -> {ns}";
                if (!why.TryGetValue(edge, out var types)) why[edge] = types = [];
                if (types.Count < 4) types.Add($"{Outer(type).Name} uses {Outer(t).Name}");
            }
            Use(type.BaseType);
            foreach (var i in type.GetInterfaces()) Use(i);
            foreach (var f in type.GetFields(Everything)) Use(f.FieldType);
            foreach (var m in type.GetMethods(Everything).Cast<MethodBase>().Concat(type.GetConstructors(Everything)))
            {
                if (m is MethodInfo mi) Use(mi.ReturnType);
                foreach (var p in m.GetParameters()) Use(p.ParameterType);
                MethodBody? body;
                try { body = m.GetMethodBody(); }
                catch (BadImageFormatException) { continue; }
                if (body is null) continue;
                foreach (var local in body.LocalVariables) Use(local.LocalType);
                foreach (var member in Tokens(m, body.GetILAsByteArray() ?? []))
                {
                    switch (member)
                    {
                        case Type t: Use(t); break;
                        case FieldInfo f: Use(f.DeclaringType); Use(f.FieldType); break;
                        case MethodBase mb: Use(mb.DeclaringType); break;
                    }
                }
            }
        }
        return graph;
    }

    private static Type Outer(Type t) => t.DeclaringType is { } d ? Outer(d) : t;

    /// <summary>The strongly connected components of more than one namespace (Tarjan): each is a dependency cycle.</summary>
    public static List<List<string>> Cycles(Dictionary<string, HashSet<string>> graph)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var onStack = new HashSet<string>();
        var cycles = new List<List<string>>();
        int next = 0;
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            onStack.Add(v);
            foreach (var w in graph.GetValueOrDefault(v) ?? [])
            {
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (onStack.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }
            if (low[v] != index[v]) return;
            var component = new List<string>();
            string x;
            do { x = stack.Pop(); onStack.Remove(x); component.Add(x); } while (x != v);
            if (component.Count > 1) cycles.Add([.. component.Order()]);
        }
        foreach (var v in graph.Keys.Order()) if (!index.ContainsKey(v)) Visit(v);
        return cycles;
    }

    private static IEnumerable<MemberInfo> Tokens(MethodBase method, byte[] il)
    {
        var module = method.Module;
        var typeArgs = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArgs = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            short value = il[i] == 0xFE && i + 1 < il.Length ? (short)(0xFE00 | il[i + 1]) : il[i];
            if (!OpCodesByValue.TryGetValue(value, out var op)) yield break; // unknown: stop rather than misread
            i += op.Size;
            int token = 0;
            switch (op.OperandType)
            {
                case OperandType.InlineNone: break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar: i += 1; break;
                case OperandType.InlineVar: i += 2; break;
                case OperandType.InlineI8 or OperandType.InlineR: i += 8; break;
                case OperandType.InlineSwitch: i += 4 + 4 * BitConverter.ToInt32(il, i); break;
                case OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineType or OperandType.InlineTok:
                    token = BitConverter.ToInt32(il, i);
                    i += 4;
                    break;
                default: i += 4; break; // InlineBrTarget, InlineI, InlineSig, InlineString, ShortInlineR
            }
            if (token == 0) continue;
            MemberInfo? member;
            try { member = module.ResolveMember(token, typeArgs, methodArgs); }
            catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or MissingMemberException) { member = null; }
            if (member is not null) yield return member;
        }
    }
}
