// Dry run of a declarative Jenkinsfile: evaluate it under a small stub of the Declarative DSL and print,
// as JSON on stdout, its parameters, options, triggers, environment, every stage (in order, nested stages
// flattened) with its `when` conditions evaluated, and the steps each stage and `post` would run.
//
//   groovy standin/dryrun.groovy [--branch B] [--param K=V]... [--changed PATH]... [--env K=V]...
//                                [--cause TimerTrigger|...]... [--workspace DIR] Jenkinsfile
//
// Nothing is executed: `sh` only records its command, `build` the job and parameters it would queue.
// `when` conditions are evaluated for the given branch, parameters, changed paths (no --changed: an
// empty changeset, as on a branch's first build) and build causes (`triggeredBy`; --cause TimerTrigger
// for a cron build). `fileExists` and `readFile` read the workspace, which only exists once earlier
// stages ran: without --workspace a file does not exist yet (as in a fresh workspace) and a stage whose
// `when` read one is marked `deferred` (Jenkins decides it when the stage starts: a runner re-runs this
// dry run with --workspace at that point); with --workspace DIR they read DIR.
// Anything the stub does not know fails loudly (exit 2) instead of being silently ignored.

import groovy.json.JsonOutput
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.builder.AstBuilder
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.CompilePhase

class DryRunError extends RuntimeException {
    DryRunError(String message) { super(message) }
}

/** What the build knows: branch, parameters, changed paths, environment, and the run's records. */
class Ctx {
    Map<String, Object> env = [:]
    Map<String, Object> params = [:]
    Map<String, String> paramOverrides = [:]
    List<String> changes = []
    List<String> causes = []
    List<String> expressionSources = []
    int expressionsSeen = 0
    File workspace = null
    int workspaceReads = 0
    List<Map> declared = []

    /** A workspace file (relative paths only, as the steps take them); counts the read. */
    File workspaceFile(String path) {
        if (path.startsWith('/') || path.split('/').contains('..')) {
            throw new DryRunError("workspace paths are relative and stay inside it, got '${path}'")
        }
        workspaceReads++
        return workspace == null ? null : new File(workspace, path)
    }

    Map currentBuild() {
        // Jenkins: a list of change sets, each with items whose affectedPaths are the changed files.
        def sets = changes ? [[items: [[affectedPaths: changes]]]] : []
        return [changeSets: sets, result: null]
    }
}

/** Ant-style glob as Jenkins' `changeset` and `branch` conditions use it (`**`, `*`, `?`). */
class Glob {
    static boolean matches(String pattern, String path, boolean caseSensitive) {
        StringBuilder re = new StringBuilder()
        int i = 0
        while (i < pattern.length()) {
            char c = pattern.charAt(i)
            if (pattern.startsWith('**/', i)) { re.append('(?:.*/)?'); i += 3; continue }
            if (pattern.startsWith('**', i)) { re.append('.*'); i += 2; continue }
            if (c == '*' as char) re.append('[^/]*')
            else if (c == '?' as char) re.append('[^/]')
            else re.append(java.util.regex.Pattern.quote(String.valueOf(c)))
            i++
        }
        int flags = caseSensitive ? 0 : java.util.regex.Pattern.CASE_INSENSITIVE
        return java.util.regex.Pattern.compile(re.toString(), flags).matcher(path).matches()
    }
}

/** A stub block: the delegate of one DSL closure. Unknown calls fail unless a subclass records them. */
class Block {
    Ctx ctx

    Block(Ctx ctx) { this.ctx = ctx }

    def propertyMissing(String name) {
        switch (name) {
            case 'env': return ctx.env
            case 'params': return ctx.params
            case 'currentBuild': return ctx.currentBuild()
            default: throw new DryRunError("unknown name '${name}' in ${getClass().simpleName}")
        }
    }

    def methodMissing(String name, args) {
        throw new DryRunError("'${name}' is not allowed in ${getClass().simpleName}")
    }

    /** The `fileExists` step: false before the workspace is known (a fresh workspace). */
    boolean fileExists(String path) {
        File f = ctx.workspaceFile(path)
        return f != null && f.exists()
    }

    boolean fileExists(Map spec) { fileExists(spec.file.toString()) }

    /** The `readFile` step: the file's text, or a placeholder naming it when it is not there (yet). */
    String readFile(String path) {
        File f = ctx.workspaceFile(path)
        return f != null && f.isFile() ? f.getText('UTF-8') : "<readFile ${path}>".toString()
    }

    String readFile(Map spec) { readFile(spec.file.toString()) }

    def run(Closure body) {
        Closure c = (Closure) body.clone()
        c.delegate = this
        c.resolveStrategy = Closure.DELEGATE_FIRST
        return c.call()
    }

    static Object plain(Object value) {
        if (value instanceof GString) return value.toString()
        if (value instanceof Closure) return '{...}'
        if (value instanceof Map) return value.collectEntries { k, v -> [(k.toString()): plain(v)] }
        if (value instanceof List || value instanceof Object[]) return value.collect { plain(it) }
        return value
    }
}

/** Records every call with its arguments (triggers, options, agent). */
class CallRecorder extends Block {
    List<Map> calls = []

    CallRecorder(Ctx ctx) { super(ctx) }

    def methodMissing(String name, args) {
        List list = args as List
        List nested = []
        if (list && list.last() instanceof Closure) {
            CallRecorder inner = new CallRecorder(ctx)
            inner.run((Closure) list.remove(list.size() - 1))
            nested = inner.calls
        }
        // A call used as an argument (buildDiscarder(logRotator(...))) is part of its caller, not an option.
        list.each { arg -> calls.removeAll { it.is(arg) } }
        Map call = [name: name, args: plain(list)]
        if (nested) call.calls = nested
        calls << call
        return call
    }
}

class ParametersBlock extends Block {
    List<Map> declared = []

    ParametersBlock(Ctx ctx) { super(ctx) }

    def choice(Map spec) { declare('choice', spec.name, spec.choices[0], spec.choices as List) }
    def booleanParam(Map spec) { declare('boolean', spec.name, spec.defaultValue ?: false, null) }
    def string(Map spec) { declare('string', spec.name, spec.defaultValue ?: '', null) }

    private void declare(String type, name, defaultValue, List choices) {
        Map p = [name: name.toString(), type: type, default: defaultValue]
        if (choices != null) p.choices = choices.collect { it.toString() }
        declared << p
    }

    /** Defaults, overridden by --param values that are checked against each parameter's type. */
    Map<String, Object> effective(Map<String, String> overrides) {
        Map<String, Object> values = [:]
        declared.each { values[it.name] = it.default }
        overrides.each { key, raw ->
            Map p = declared.find { it.name == key }
            if (p == null) throw new DryRunError("no parameter named ${key}")
            if (p.type == 'choice' && !(raw in p.choices)) {
                throw new DryRunError("${key} must be one of ${p.choices.join(', ')}, got '${raw}'")
            }
            if (p.type == 'boolean' && !(raw in ['true', 'false'])) {
                throw new DryRunError("${key} is a boolean: true or false, got '${raw}'")
            }
            values[key] = p.type == 'boolean' ? raw == 'true' : raw
        }
        return values
    }
}

class EnvironmentBlock extends Block {
    Map<String, String> values = [:]

    EnvironmentBlock(Ctx ctx) { super(ctx) }

    def propertyMissing(String name, value) {
        values[name] = value == null ? null : value.toString()
        ctx.env[name] = values[name]
    }

    def credentials(String id) { return "<credentials ${id}>".toString() }
}

/** One `when` condition: evaluates to true/false and describes itself in Jenkinsfile syntax. */
abstract class Condition {
    abstract boolean evaluate(Ctx ctx)
    abstract String describe()
}

class BranchCondition extends Condition {
    String pattern
    boolean evaluate(Ctx ctx) {
        def branch = ctx.env.BRANCH_NAME
        return branch != null && Glob.matches(pattern, branch.toString(), true)
    }
    String describe() { "branch '${pattern}'" }
}

class ChangesetCondition extends Condition {
    String pattern
    boolean caseSensitive
    boolean evaluate(Ctx ctx) { ctx.changes.any { Glob.matches(pattern, it, caseSensitive) } }
    String describe() { "changeset '${pattern}'" }
}

class TriggeredByCondition extends Condition {
    String cause
    boolean evaluate(Ctx ctx) { cause in ctx.causes }
    String describe() { "triggeredBy '${cause}'" }
}

class EnvironmentCondition extends Condition {
    String name
    String value
    boolean evaluate(Ctx ctx) { ctx.env[name]?.toString() == value }
    String describe() { "environment name: '${name}', value: '${value}'" }
}

class ExpressionCondition extends Condition {
    Closure body
    String source
    boolean evaluate(Ctx ctx) {
        Block scope = new Block(ctx)
        return scope.run(body) as boolean
    }
    String describe() { "expression { ${source} }" }
}

class GroupCondition extends Condition {
    String kind   // allOf, anyOf, not
    List<Condition> parts = []
    boolean evaluate(Ctx ctx) {
        switch (kind) {
            case 'allOf': return parts.every { it.evaluate(ctx) }
            case 'anyOf': return parts.any { it.evaluate(ctx) }
            default: return !parts[0].evaluate(ctx)
        }
    }
    String describe() { "${kind} { ${parts.collect { it.describe() }.join('; ')} }" }
}

class WhenBlock extends Block {
    List<Condition> conditions = []
    Map<String, Object> flags = [:]

    WhenBlock(Ctx ctx) { super(ctx) }

    def branch(String pattern) { conditions << new BranchCondition(pattern: pattern) }
    def branch(Map spec) { conditions << new BranchCondition(pattern: spec.pattern) }
    def changeset(String pattern) { conditions << new ChangesetCondition(pattern: pattern, caseSensitive: false) }
    def changeset(Map spec) {
        conditions << new ChangesetCondition(pattern: spec.pattern, caseSensitive: spec.caseSensitive ?: false)
    }
    def triggeredBy(String cause) { conditions << new TriggeredByCondition(cause: cause) }
    def environment(Map spec) {
        conditions << new EnvironmentCondition(name: spec.name, value: spec.value?.toString())
    }
    def expression(Closure body) {
        if (ctx.expressionsSeen >= ctx.expressionSources.size()) {
            throw new DryRunError('more expression conditions evaluated than found in the source')
        }
        String source = ctx.expressionSources[ctx.expressionsSeen++]
        conditions << new ExpressionCondition(body: body, source: source)
    }
    def allOf(Closure body) { group('allOf', body) }
    def anyOf(Closure body) { group('anyOf', body) }
    def not(Closure body) {
        GroupCondition g = group('not', body)
        if (g.parts.size() != 1) throw new DryRunError('not { } takes exactly one condition')
    }
    def beforeAgent(boolean value) { flags.beforeAgent = value }
    def beforeInput(boolean value) { flags.beforeInput = value }
    def beforeOptions(boolean value) { flags.beforeOptions = value }

    private GroupCondition group(String kind, Closure body) {
        WhenBlock inner = new WhenBlock(ctx)
        inner.run(body)
        GroupCondition g = new GroupCondition(kind: kind, parts: inner.conditions)
        conditions << g
        return g
    }
}

/** Steps: `sh` and friends are recorded with the wrappers (credentials, status, timeout) around them. */
class StepsBlock extends Block {
    static final Set<String> BINDINGS = ['aws', 'string', 'file', 'usernamePassword', 'usernameColonPassword',
                                         'sshUserPrivateKey', 'certificate'] as Set
    List<Map> steps = []
    List<String> within = []

    StepsBlock(Ctx ctx) { super(ctx) }

    def sh(script) {
        String command = script instanceof Map ? script.script : script
        // A double-quoted command is interpolated by Groovy before the shell sees it: secrets would leak.
        boolean interpolated = (script instanceof Map ? script.script : script) instanceof GString
        record([sh: command.toString(), interpolated: interpolated])
    }

    def input(Map spec) { record([input: spec.message?.toString(), ok: spec.ok?.toString()]) }
    def input(String message) { record([input: message]) }

    /** The `build` step: the job and the parameters it queues a build with (wait: true by default). */
    def build(Map spec) {
        if (spec.job == null) throw new DryRunError('build needs job:')
        List params = (spec.parameters ?: []) as List
        params.each { p ->
            if (!(p instanceof Map) || !p.containsKey('type')) {
                throw new DryRunError("build parameters are string(name:, value:) or booleanParam(name:, value:), got ${p}")
            }
            // A build of this same job: Jenkins drops a parameter the job does not declare (with only a
            // warning in the log) and refuses a choice outside its list; say so here instead.
            if (spec.job.toString() == ctx.env.JOB_NAME?.toString()) {
                Map declared = ctx.declared.find { it.name == p.name }
                if (declared == null) throw new DryRunError("build: this job has no parameter ${p.name}")
                if (declared.type == 'choice' && !(p.value in declared.choices)) {
                    throw new DryRunError("build: ${p.name} must be one of ${declared.choices.join(', ')}, got '${p.value}'")
                }
            }
        }
        record([build: spec.job.toString(), wait: spec.containsKey('wait') ? spec.wait as boolean : true,
                propagate: spec.containsKey('propagate') ? spec.propagate as boolean : true,
                parameters: params.collect { plain(it) }])
    }

    def build(String job) { build([job: job]) }

    // A build parameter (name:, value:), or the credentials binding of the same name.
    def string(Map spec) {
        if (spec.containsKey('value')) return [type: 'string', name: spec.name?.toString(), value: spec.value?.toString()]
        return "string(${describeArgs([spec])})".toString()
    }

    def booleanParam(Map spec) { [type: 'boolean', name: spec.name?.toString(), value: spec.value as boolean] }

    def script(Closure body) {
        throw new DryRunError('script { } blocks are logic; this Jenkinsfile keeps logic in make targets')
    }

    def methodMissing(String name, args) {
        List list = args as List
        if (name in BINDINGS) return "${name}(${describeArgs(list)})".toString()
        if (list && list.last() instanceof Closure) {
            Closure body = (Closure) list.remove(list.size() - 1)
            within.add("${name}(${describeArgs(list)})".toString())
            try {
                run(body)
            } finally {
                within.remove(within.size() - 1)
            }
            return null
        }
        record([step: name, args: plain(list)])
    }

    private static String describeArgs(List list) {
        list.collect { arg ->
            if (arg instanceof Map) return arg.collect { k, v -> "${k}: ${plain(v)}" }.join(', ')
            return plain(arg).toString()
        }.join(', ')
    }

    private void record(Map step) {
        if (within) step.within = new ArrayList(within)
        steps << step
    }
}

class StageBlock extends Block {
    String name
    List<String> parents
    WhenBlock when
    List<Map> steps = []
    List<StageBlock> children = []
    List<Map> options = []
    Map<String, String> environment = [:]
    Map<String, List<Map>> post = [:]

    StageBlock(Ctx ctx, String name, List<String> parents) {
        super(ctx)
        this.name = name
        this.parents = parents
    }

    def when(Closure body) {
        when = new WhenBlock(ctx)
        when.run(body)
    }

    def steps(Closure body) {
        StepsBlock s = new StepsBlock(ctx)
        s.run(body)
        steps = s.steps
    }

    def stages(Closure body) {
        StagesBlock s = new StagesBlock(ctx, parents + [name])
        s.run(body)
        children = s.stages
    }

    def options(Closure body) {
        CallRecorder r = new CallRecorder(ctx)
        r.run(body)
        options = r.calls
    }

    def environment(Closure body) {
        EnvironmentBlock e = new EnvironmentBlock(ctx)
        e.run(body)
        environment = e.values
    }

    def post(Closure body) {
        PostBlock p = new PostBlock(ctx)
        p.run(body)
        post = p.conditions
    }
}

class StagesBlock extends Block {
    List<String> parents
    List<StageBlock> stages = []

    StagesBlock(Ctx ctx, List<String> parents) {
        super(ctx)
        this.parents = parents
    }

    def stage(String name, Closure body) {
        if (name in stages*.name) throw new DryRunError("two stages named '${name}'")
        StageBlock s = new StageBlock(ctx, name, parents)
        s.run(body)
        stages << s
    }
}

class PostBlock extends Block {
    Map<String, List<Map>> conditions = [:]
    static final List<String> KINDS = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure',
                                       'success', 'unstable', 'unsuccessful', 'cleanup']

    PostBlock(Ctx ctx) { super(ctx) }

    def methodMissing(String name, args) {
        List list = args as List
        if (!(name in KINDS) || list.size() != 1 || !(list[0] instanceof Closure)) {
            throw new DryRunError("'${name}' is not a post condition")
        }
        StepsBlock s = new StepsBlock(ctx)
        s.run((Closure) list[0])
        conditions[name] = s.steps
    }
}

/** The `pipeline { }` block: sections are collected first, then evaluated in Jenkins' order. */
class PipelineBlock extends Block {
    Map<String, Closure> sections = [:]
    Object agent

    PipelineBlock(Ctx ctx) { super(ctx) }

    def propertyMissing(String name) {
        // `agent any` / `agent none`
        return name in ['any', 'none'] ? name : super.propertyMissing(name)
    }

    def agent(arg) { agent = plain(arg) }

    def methodMissing(String name, args) {
        List list = args as List
        if (!(name in ['triggers', 'options', 'parameters', 'environment', 'stages', 'post', 'tools'])) {
            throw new DryRunError("'${name}' is not a pipeline section")
        }
        if (list.size() != 1 || !(list[0] instanceof Closure)) throw new DryRunError("${name} takes a block")
        if (sections.containsKey(name)) throw new DryRunError("two ${name} sections")
        sections[name] = (Closure) list[0]
    }

    Map evaluate() {
        ParametersBlock parameters = new ParametersBlock(ctx)
        if (sections.parameters) parameters.run(sections.parameters)
        ctx.params.putAll(parameters.effective(ctx.paramOverrides))
        ctx.declared = parameters.declared

        EnvironmentBlock environment = new EnvironmentBlock(ctx)
        if (sections.environment) environment.run(sections.environment)

        Map out = [agent: agent, parameters: parameters.declared, params: ctx.params,
                   environment: environment.values]
        ['triggers', 'options'].each { section ->
            CallRecorder r = new CallRecorder(ctx)
            if (sections[section]) r.run(sections[section])
            out[section] = r.calls
        }
        if (!sections.stages) throw new DryRunError('the pipeline has no stages')
        StagesBlock stages = new StagesBlock(ctx, [])
        stages.run(sections.stages)
        List<Map> flat = []
        flatten(stages.stages, [], true, flat)
        out.stages = flat
        PostBlock post = new PostBlock(ctx)
        if (sections.post) post.run(sections.post)
        out.post = post.conditions
        return out
    }

    private void flatten(List<StageBlock> stages, List<String> inheritedWhen, boolean parentRuns, List<Map> flat) {
        stages.each { StageBlock s ->
            List<String> when = new ArrayList(inheritedWhen)
            boolean runs = parentRuns
            boolean deferred = false
            if (s.when) {
                ctx.workspaceReads = 0
                boolean own = s.when.conditions.every { it.evaluate(ctx) }
                // Decided by files earlier stages write: only known when the stage starts.
                deferred = parentRuns && ctx.workspace == null && ctx.workspaceReads > 0
                runs = runs && own
                when.addAll(s.when.conditions.collect { it.describe() })
            }
            if (s.children) {
                if (s.steps) throw new DryRunError("stage '${s.name}' has both steps and stages")
                flatten(s.children, when, runs, flat)
                return
            }
            Map stage = [name: s.name, parents: s.parents, when: when, runs: runs, steps: s.steps,
                         options: s.options, environment: s.environment]
            if (deferred) stage.deferred = true
            if (s.post) stage.post = s.post
            flat << stage
        }
    }
}

/** Source text of every `expression { ... }` closure, in the order the script evaluates them. */
List<String> expressionSources(String text) {
    List<String> lines = text.readLines()
    List<String> found = []
    def visitor = new CodeVisitorSupport() {
        @Override
        void visitMethodCallExpression(MethodCallExpression call) {
            if (call.methodAsString == 'expression' && call.arguments instanceof ArgumentListExpression) {
                def args = ((ArgumentListExpression) call.arguments).expressions
                if (args.size() == 1 && args[0] instanceof ClosureExpression) {
                    found << sourceOf(lines, (ClosureExpression) args[0])
                }
            }
            super.visitMethodCallExpression(call)
        }
    }
    new AstBuilder().buildFromString(CompilePhase.CONVERSION, false, text).each { ASTNode node ->
        if (node instanceof Statement) node.visit(visitor)
    }
    return found
}

String sourceOf(List<String> lines, ASTNode node) {
    StringBuilder sb = new StringBuilder()
    for (int n = node.lineNumber; n <= node.lastLineNumber; n++) {
        String line = lines[n - 1]
        int from = n == node.lineNumber ? node.columnNumber - 1 : 0
        int to = n == node.lastLineNumber ? node.lastColumnNumber - 1 : line.length()
        sb.append(line.substring(from, to)).append(' ')
    }
    String body = sb.toString().trim()
    // Drop the closure's own braces.
    return body.substring(1, body.length() - 1).trim().replaceAll(/\s+/, ' ')
}

Map parseArgs(String[] argv) {
    Map parsed = [file: null, branch: null, params: [:], changes: [], causes: [], env: [:], workspace: null]
    def pair = { String option, String value ->
        int eq = value.indexOf('=')
        if (eq <= 0) throw new DryRunError("${option} takes KEY=VALUE, got '${value}'")
        return [value.substring(0, eq), value.substring(eq + 1)]
    }
    for (int i = 0; i < argv.length; i++) {
        String a = argv[i]
        if (a in ['--branch', '--param', '--changed', '--env', '--cause', '--workspace']) {
            if (i + 1 >= argv.length) throw new DryRunError("${a} needs a value")
            String v = argv[++i]
            if (a == '--branch') {
                parsed.branch = v
            } else if (a == '--workspace') {
                if (!new File(v).isDirectory()) throw new DryRunError("--workspace: no such folder: ${v}")
                parsed.workspace = new File(v)
            } else if (a == '--changed') {
                parsed.changes << v
            } else if (a == '--cause') {
                parsed.causes << v
            } else {
                List kv = pair(a, v)
                parsed[a == '--param' ? 'params' : 'env'][kv[0]] = kv[1]
            }
        } else if (a.startsWith('-')) {
            throw new DryRunError("unknown option ${a}")
        } else if (parsed.file == null) {
            parsed.file = a
        } else {
            throw new DryRunError("one Jenkinsfile only, got '${a}' too")
        }
    }
    if (parsed.file == null) throw new DryRunError('usage: dryrun.groovy [options] Jenkinsfile')
    return parsed
}

try {
    Map opts = parseArgs(args)
    File file = new File(opts.file)
    if (!file.isFile()) throw new DryRunError("no such file: ${opts.file}")
    String text = file.getText('UTF-8')

    Ctx ctx = new Ctx()
    // Jenkins always sets JOB_NAME (the job's full name); `build job: env.JOB_NAME` needs one.
    ctx.env.JOB_NAME = 'job'
    ctx.env.putAll(opts.env)
    if (opts.branch != null) ctx.env.BRANCH_NAME = opts.branch
    ctx.paramOverrides = opts.params
    ctx.changes = opts.changes
    ctx.causes = opts.causes
    ctx.workspace = opts.workspace
    ctx.expressionSources = expressionSources(text)

    PipelineBlock pipeline = new PipelineBlock(ctx)
    Binding binding = new Binding()
    binding.setVariable('pipeline', { Closure body -> pipeline.run(body) })
    binding.setVariable('env', ctx.env)
    binding.setVariable('params', ctx.params)
    // Before `pipeline { }`: a string credential bound on the controller (the webhook's secret token).
    binding.setVariable('string', { Map spec -> spec })
    binding.setVariable('withCredentials', { List specs, Closure body ->
        specs.each { Map spec -> ctx.env[spec.variable.toString()] = "<credentials ${spec.credentialsId}>".toString() }
        try {
            body()
        } finally {
            specs.each { Map spec -> ctx.env.remove(spec.variable.toString()) }
        }
    })
    new GroovyShell(binding).evaluate(text, file.name)
    if (pipeline.sections.isEmpty()) throw new DryRunError('no pipeline { } block')

    Map out = pipeline.evaluate()
    if (ctx.expressionsSeen != ctx.expressionSources.size()) {
        throw new DryRunError("found ${ctx.expressionSources.size()} expression conditions, evaluated ${ctx.expressionsSeen}")
    }
    out.branch = ctx.env.BRANCH_NAME
    out.changes = ctx.changes
    out.causes = ctx.causes
    println JsonOutput.prettyPrint(JsonOutput.toJson(out))
} catch (DryRunError e) {
    System.err.println("dryrun: ${e.message}")
    System.exit(2)
} catch (org.codehaus.groovy.control.CompilationFailedException e) {
    System.err.println("dryrun: the Jenkinsfile is not valid Groovy: ${e.message.readLines().take(3).join(' ')}")
    System.exit(2)
} catch (MissingMethodException | MissingPropertyException e) {
    // The Jenkinsfile called something the stub does not model: say what, without a stack trace.
    System.err.println("dryrun: unsupported in the Jenkinsfile: ${e.message.readLines()[0]}")
    System.exit(2)
}
